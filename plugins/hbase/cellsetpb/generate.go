// Package cellsetpb holds the generated code of cellset.proto: the CellSet
// and Cell messages the HBase REST gateway reads and writes as
// application/x-protobuf.
package cellsetpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative cellset.proto
