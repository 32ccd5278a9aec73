// Package pluginpb holds the generated code of plugin.proto, the mqgate
// plugin protocol. Plugin authors use package sdk, not this one.
package pluginpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto
