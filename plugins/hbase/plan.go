package hbase

// The REST gateway has no request that mixes puts with deletes or checks,
// and requests run side by side; so a batch is cut into rounds that run
// one after the other. A round first sends its puts, one multi-row CellSet
// per table (more when a table's rows pass max_request_bytes), then its
// single-row requests: deletes and check-and-puts, at most one per row.
// A record goes into the earliest round that keeps it after the records
// of the same table and row before it. Records of a batch of puts only
// make one round: one request per table.

// rowID names a row of a table.
type rowID struct{ table, row string }

// round is one step of a batch's plan.
type round struct {
	// tables lists the tables with puts in the round, first put first;
	// puts holds each one's rows in the order they were first put.
	tables []string
	puts   map[string][]*putRow
	// singles are the deletes and check-and-puts, each of another row.
	singles []single
}

// single is a delete or check-and-put: one record, one request.
type single struct {
	record int
	mu     *mutation
}

// rowState is where a row's last record went.
type rowState struct {
	round  int
	single bool    // the last record was a delete or check
	put    *putRow // the round's putRow of the row, when it was a put
}

// plan cuts the mapped records of a batch into rounds. muts[i] is nil for
// a record that failed its mapping.
func plan(muts []*mutation) []*round {
	var rounds []*round
	at := func(i int) *round {
		for len(rounds) <= i {
			rounds = append(rounds, &round{puts: map[string][]*putRow{}})
		}
		return rounds[i]
	}
	rows := map[rowID]rowState{}
	for i, mu := range muts {
		if mu == nil {
			continue
		}
		id := rowID{mu.table, string(mu.row)}
		st, seen := rows[id]
		r := 0
		if seen {
			r = st.round
			if st.single {
				r++ // after the single, which ends its round
			}
		}
		rd := at(r)
		if mu.op != opPut {
			rd.singles = append(rd.singles, single{record: i, mu: mu})
			rows[id] = rowState{round: r, single: true}
			continue
		}
		pr := st.put
		if !seen || st.single {
			pr = &putRow{table: mu.table, key: mu.row}
			if _, ok := rd.puts[mu.table]; !ok {
				rd.tables = append(rd.tables, mu.table)
			}
			rd.puts[mu.table] = append(rd.puts[mu.table], pr)
		}
		pr.add(mu.cells, mu.ts, i)
		rows[id] = rowState{round: r, put: pr}
	}
	return rounds
}

// chunk splits a table's rows into requests of at most maxBytes each, as
// estimated; a row larger than that goes alone.
func chunk(rows []*putRow, encoding string, maxBytes int) [][]*putRow {
	var out [][]*putRow
	var cur []*putRow
	size := 0
	for _, r := range rows {
		n := r.encodedSize(encoding)
		if len(cur) > 0 && size+n > maxBytes {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, r)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
