// Package httppb holds the generated Go code of mqgate_http.proto, the
// protobuf bodies of the HTTP API. The gateway reads and writes those
// bodies without it (frontends/http/decode_protobuf.go and
// consume_protobuf.go); Go clients, the tests and mqgate-bench use it.
package httppb

//go:generate protoc --go_out=. --go_opt=paths=source_relative mqgate_http.proto
