# The README's two commands: `go run ./cmd/mqgate` and `make test`.
GO ?= go

.PHONY: test test-stress vet build bench generate fuzz ui screenshots

test:
	$(GO) test -race -count=1 -timeout 15m ./...

# The whole suite N times (default 10), each run as `make test` runs it;
# prints each run's result and time, the failures of failed runs (full
# logs in .stress/), and the pass count. Exits 1 unless every run passed.
N ?= 10
test-stress:
	@mkdir -p .stress; pass=0; \
	for i in $$(seq 1 $(N)); do \
	  start=$$(date +%s); \
	  if $(MAKE) --no-print-directory test > .stress/run-$$i.log 2>&1; then pass=$$((pass+1)); r=passed; else r=FAILED; fi; \
	  echo "run $$i of $(N): $$r in $$(( $$(date +%s) - start )) s"; \
	  if [ $$r = FAILED ]; then grep -E -- '--- FAIL|^FAIL|^panic:|DATA RACE' .stress/run-$$i.log | head -20; fi; \
	done; \
	echo "passed $$pass of $(N) runs"; \
	[ $$pass -eq $(N) ]

vet:
	$(GO) vet ./...

# -buildvcs=auto stamps the commit (when built in a git checkout) that `mqgate version` prints.
build:
	$(GO) build -buildvcs=auto -o mqgate ./cmd/mqgate
	$(GO) build -o mqgate-bench ./cmd/mqgate-bench

# Regenerates committed code (needs protoc, protoc-gen-go, protoc-gen-go-grpc, protoc-gen-go-vtproto).
generate:
	$(GO) generate ./...

# The web console is plain files (frontends/console/static): nothing to
# build. This refreshes its one vendored library, the uPlot charts (MIT),
# from npm at the version pinned here.
UPLOT ?= 1.6.32
ui:
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent uplot@$(UPLOT) >/dev/null && tar xzf uplot-$(UPLOT).tgz && \
	cp package/dist/uPlot.esm.js package/dist/uPlot.min.css $(CURDIR)/frontends/console/static/vendor/ && \
	cp package/LICENSE $(CURDIR)/frontends/console/static/vendor/uPlot.LICENSE && rm -rf $$tmp

# The console's screenshots in docs/console, taken by its browser test
# (needs chromium and `npm ci --prefix frontends/console/test`).
screenshots:
	MQGATE_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test ./cmd/mqgate -run '^TestConsoleInABrowser$$' -count=1

# Each fuzz target for a short while; FUZZTIME=5m for longer.
FUZZTIME ?= 20s
fuzz:
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeMessages -fuzztime $(FUZZTIME)
	$(GO) test ./sdk -run '^$$' -fuzz FuzzCodec -fuzztime $(FUZZTIME)
	$(GO) test ./sdk -run '^$$' -fuzz FuzzRecordBatch -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeNDJSON -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeRaw -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeProtobuf -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzPullProtobuf -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzConsumeAnswers -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzProduceAnswer -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzParseBrowseQuery -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeRedriveBody -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeCreateTopicBody -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeResetBody -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzParsePendingQuery -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzParseSearchQuery -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzParseListQuery -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeDiscardBody -fuzztime $(FUZZTIME)
	$(GO) test ./core/push -run '^$$' -fuzz FuzzReadDeliveredLog -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/http -run '^$$' -fuzz FuzzDecodeKafkaSend -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/thrift -run '^$$' -fuzz FuzzMessageMapping -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/thrift -run '^$$' -fuzz FuzzServeConn -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/thrift -run '^$$' -fuzz FuzzDecodeBatchArgs -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/thrift -run '^$$' -fuzz FuzzCallToken -fuzztime $(FUZZTIME)
	$(GO) test ./frontends/thrift -run '^$$' -fuzz '^FuzzDelayMessageMapping$$' -fuzztime $(FUZZTIME)
	$(GO) test ./core/delay -run '^$$' -fuzz '^FuzzParseChronosID$$' -fuzztime $(FUZZTIME)
	$(GO) test ./core/config -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./core/auth/acl -run '^$$' -fuzz FuzzPattern -fuzztime $(FUZZTIME)
	$(GO) test ./core/auth -run '^$$' -fuzz FuzzParseAuthorization -fuzztime $(FUZZTIME)
	$(GO) test ./core/auth -run '^$$' -fuzz FuzzAuthenticateToken -fuzztime $(FUZZTIME)
	$(GO) test ./core/push -run '^$$' -fuzz FuzzDDMQReply -fuzztime $(FUZZTIME)
	$(GO) test ./core/transform -run '^$$' -fuzz FuzzJSONPath -fuzztime $(FUZZTIME)
	$(GO) test ./core/consume -run '^$$' -fuzz FuzzDecodeSubRecord -fuzztime $(FUZZTIME)

bench:
	$(GO) run ./cmd/mqgate-bench -scenario all
