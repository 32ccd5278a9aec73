package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// roundResult is one round of a scenario: both sides.
type roundResult struct{ g, d result }

// reportRounds prints the medians of a scenario's rounds: the ratio, the
// server CPU per message of each side and, for latency scenarios, the
// added latency.
func reportRounds(s scenario, rounds []roundResult) {
	var ratios, gcpu, dcpu []float64
	var p50, p99 []time.Duration
	for _, r := range rounds {
		ratios = append(ratios, r.g.rate()/r.d.rate())
		if r.g.msgs > 0 && r.d.msgs > 0 {
			gcpu = append(gcpu, float64(r.g.cpu.server().Microseconds())/float64(r.g.msgs))
			dcpu = append(dcpu, float64(r.d.cpu.server().Microseconds())/float64(r.d.msgs))
		}
		p50 = append(p50, r.g.pct(0.5)-r.d.pct(0.5))
		p99 = append(p99, r.g.pct(0.99)-r.d.pct(0.99))
	}
	fmt.Printf("%s: over %d rounds, gateway/direct median %.2f (%s); server CPU µs per message median: mqgate %.1f, direct %.1f\n",
		s.name, len(rounds), median(ratios), spread(ratios), median(gcpu), median(dcpu))
	if s.latency {
		fmt.Printf("%s: over %d rounds, added latency median p50 %s, p99 %s\n", s.name, len(rounds),
			medianDuration(p50).Round(10*time.Microsecond), medianDuration(p99).Round(10*time.Microsecond))
	}
	fmt.Println()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDuration(ds []time.Duration) time.Duration {
	fs := make([]float64, len(ds))
	for i, d := range ds {
		fs[i] = float64(d)
	}
	return time.Duration(median(fs))
}

// spread lists the values in order, as "0.61 0.64 0.70".
func spread(xs []float64) string {
	s := slices.Sorted(slices.Values(xs))
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

// repeatableNames lists the scenarios -rounds applies to.
func repeatableNames() string {
	var names []string
	for _, s := range scenarios {
		if s.repeatable {
			names = append(names, s.name)
		}
	}
	return strings.Join(names, ", ")
}
