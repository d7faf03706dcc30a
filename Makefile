# kubelease developer tasks. `make test` is what CI runs (see .ci/run).
GO ?= go

.PHONY: test vet fmt cover demo ci

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

ci:
	bash .ci/run
