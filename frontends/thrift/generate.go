package thriftapi

// The IDL files are DDMQ's (seeds 001 and 000) with a namespace go line
// added. Regenerate with Debian's thrift-compiler 0.17; the output is
// committed as the compiler wrote it.
//go:generate thrift -r --gen go:skip_remote -out gen-go producer.thrift
//go:generate thrift -r --gen go:skip_remote -out gen-go consumer.thrift
