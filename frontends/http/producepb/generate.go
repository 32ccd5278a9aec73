// Package producepb holds the generated Go code of produce.proto, the
// protobuf body of the HTTP produce route. The gateway decodes that body
// without it (frontends/http/decode_protobuf.go); Go clients, the tests and
// mqgate-bench encode with it.
package producepb

//go:generate protoc --go_out=. --go_opt=paths=source_relative produce.proto
