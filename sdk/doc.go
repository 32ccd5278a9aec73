// Package sdk is everything a mqgate plugin author imports: the record and
// offset types, the Backend and Sink interfaces, the error codes clients see,
// and ServeBackend/ServeSink, which turn an implementation into a plugin
// process the gateway can start.
//
// A plugin reports every problem of its config at once as ConfigErrors
// (DecodeConfig finds unknown keys and wrongly typed values), and one that
// also implements ConfigValidator has its config checked by `mqgate check`
// before the gateway starts.
//
// A backend plugin's main is a few lines:
//
//	func main() { sdk.ServeBackend(mybackend.New(sdk.Logger())) }
//
// sdk depends only on go-plugin, gRPC, protobuf and hclog; it never imports
// the gateway's core, its frontends or a bundled plugin, so a third-party
// plugin stays small.
package sdk
