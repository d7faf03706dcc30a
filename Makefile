# kubelease developer tasks. `make test` is what CI runs (see .ci/run).
GO ?= go

.PHONY: test vet fmt cover demo ci chaos chaos-real fuzz e2e bench

test:
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...
	test -z "$$(gofmt -l .)"

fmt:
	gofmt -w .

cover:
	$(GO) test -count=1 -coverprofile=coverage.out .
	$(GO) tool cover -func=coverage.out | tail -1

demo:
	$(GO) run ./examples/election
	$(GO) run ./examples/shards

ci:
	bash .ci/run

# The long fault-schedule campaigns: 2,000 seeded schedules of the lease
# (docs/design.md §1: the safety promise checked by machine), then 2,000 of the runner
# (docs/design.md §1 and §5, on works; half of them with planned handoffs), then 1,000 of shard sets (members joining,
# leaving, crashing, freezing, cut off; invariants in chaos_shards_check_test.go).
# A failing seed re-runs alone with go test -run 'TestChaos$' -chaos.seed=<seed> -v .
# ('TestChaosRunner$' for a runner seed, 'TestChaosShards$' for a shard seed).
chaos:
	$(GO) test -race -count=1 -run 'TestChaos$$' -chaos.n=2000 -timeout 60m -v . > chaos.out 2>&1; \
	status=$$?; \
	$(GO) test -race -count=1 -run 'TestChaosRunner$$' -chaos.n=2000 -timeout 60m -v . >> chaos.out 2>&1 || status=1; \
	$(GO) test -race -count=1 -run 'TestChaosShards$$' -chaos.n=1000 -timeout 90m -v . >> chaos.out 2>&1 || status=1; \
	grep -E '^(---|ok|FAIL|PASS)|chaos:|seed [0-9]+:' chaos.out; exit $$status

# Each fuzz target for FUZZTIME (default 60s), one after the other, in every
# package that has some.
FUZZTIME ?= 60s
FUZZPKGS ?= . ./internal/kubeconfig
fuzz:
	for p in $(FUZZPKGS); do \
		for f in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
		done; \
	done

# The real-server tier: builds kube-apiserver v1.37.2 once (cached under the
# user cache dir; ~10 min cold on 2 cores), runs it with an in-process etcd
# on 127.0.0.1, and runs the conformance suite and the real-server tests.
e2e:
	cd e2e && $(GO) test -count=1 -timeout 40m ./...

# The long partition campaign on the real server (e2e/partition_test.go):
# 200 seeded schedules, three contenders as separate OS processes, each behind
# its own fault proxy, writing to a fenced store; the holder (sometimes a
# standby too) cut off by a blackhole or resets for TTL/4 to 2¼ TTL (TTL 4 s).
# Invariants P1–P3 of partition_test.go. About 25 minutes on 2 cores (CI runs
# 8 schedules, about a minute, within `make e2e`). A failing schedule
# re-runs with -partition.seed=<seed> -partition.n=1.
PARTITION_N ?= 200
chaos-real:
	cd e2e && $(GO) test -count=1 -run 'TestPartitionCampaign$$' -partition.n=$(PARTITION_N) -timeout 60m -v . > ../chaos-real.out 2>&1; \
	status=$$?; grep -E '^(---|ok|FAIL|PASS)|partition_test.go:[0-9]+: (partition campaign|tenures|a lost work|next start|fenced store|takeovers|P[123]:)' ../chaos-real.out; exit $$status

# Side by side with client-go's leader election, on the fake and on a real
# kube-apiserver, plus the shard-set benchmarks: rewrites BENCHMARKS.md,
# docs/latency.png and bench/results.json (about 20 minutes; not part of CI).
# bash bench/run.sh -phases shards -update re-measures only the shard sets
# and keeps the other phases' results from bench/results.json;
# bash bench/run.sh -phases rollout -backends real -update only the rolling
# updates of examples/controller-runtime (about 4 minutes).
bench:
	bash bench/run.sh
