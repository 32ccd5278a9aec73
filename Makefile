# The README's two commands: `go run ./cmd/mqgate` and `make test`.
GO ?= go

.PHONY: test vet build bench generate fuzz

test:
	$(GO) test -race -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

build:
	$(GO) build -o mqgate ./cmd/mqgate
	$(GO) build -o mqgate-bench ./cmd/mqgate-bench

# Regenerates committed code (needs protoc, protoc-gen-go, protoc-gen-go-grpc).
generate:
	$(GO) generate ./...

# Each fuzz target for a short while; FUZZTIME=5m for longer.
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeMessages -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeKafkaSend -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/thrift -run '^$$' -fuzz FuzzMessageMapping -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/thrift -run '^$$' -fuzz FuzzServeConn -fuzztime $(FUZZTIME)
	$(GO) test ./core/config -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

bench:
	$(GO) run ./cmd/mqgate-bench -scenario all
