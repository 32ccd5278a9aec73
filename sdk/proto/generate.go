// Package pluginpb holds the generated code of plugin.proto, the mqgate
// plugin protocol. Plugin authors use package sdk, not this one.
package pluginpb

// protoc-gen-go-vtproto: go install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.1-0.20240319094008-0393e58bdf10

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative --go-vtproto_out=. --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+unmarshal_unsafe+size plugin.proto
