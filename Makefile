# skywire: build, test, release. `make help` lists the targets.

GO       ?= go
PKG      := github.com/skyfleet/skywire
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -s -w -X $(PKG)/internal/buildinfo.Version=$(VERSION) \
            -X $(PKG)/internal/buildinfo.Commit=$(COMMIT) -X $(PKG)/internal/buildinfo.Date=$(DATE)
PREFIX   ?= /usr/local
DIST     := dist
# os/arch[/arm version]: every one must compile (`make release`).
RELEASE_TARGETS := linux/amd64 linux/arm64 linux/arm/7 linux/arm/6 windows/amd64 darwin/amd64 darwin/arm64
RUN_DIR  := run

.PHONY: help build install test lint cross bench release run demo clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 10

build: ## build ./skywire (static, CGO_ENABLED=0)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o skywire .

install: build ## install skywire into $(PREFIX)/bin
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 skywire $(DESTDIR)$(PREFIX)/bin/skywire

lint: ## gofmt and go vet
	@files=$$(find . -name '*.go' -not -path './.git/*' -not -path './$(DIST)/*'); \
	 bad=$$(gofmt -l $$files); \
	 if [ -n "$$bad" ]; then echo "not gofmt-formatted (run gofmt -w):"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

cross: ## type-check the tree for the other release platforms (fast; `make release` links them)
	GOOS=windows GOARCH=amd64 $(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=linux GOARCH=arm GOARM=6 $(GO) vet ./...

test: lint cross ## lint, cross, then every test with the race detector (unit, in-process, processes, repo guards)
	$(GO) test -race -count=1 ./...

bench: ## benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./...

release: ## static binaries for every release target into dist/, with SHA256SUMS
	@rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for t in $(RELEASE_TARGETS); do \
	  os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=""; name=$$arch; \
	  if [ "$$arch" = arm ]; then arm=$${rest#*/}; name=armv$$arm; fi; \
	  ext=""; [ "$$os" = windows ] && ext=.exe; \
	  out=$(DIST)/skywire-$(VERSION)-$$os-$$name$$ext; \
	  echo "  $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out .; \
	done
	@cd $(DIST) && sha256sum skywire-* > SHA256SUMS && echo "  $(DIST)/SHA256SUMS"

demo: build ## build and run `skywire demo`: a private network on this machine, SOCKS5 on 127.0.0.1:1080 over 2 hops
	./skywire demo

run: build ## build and run a visor here (config and state in ./run; Ctrl-C stops it)
	@mkdir -p $(RUN_DIR)
	@test -f $(RUN_DIR)/skywire-config.json || ./skywire visor gen-config -o $(RUN_DIR)/skywire-config.json
	./skywire visor run -c $(RUN_DIR)/skywire-config.json

clean: ## remove build outputs
	rm -rf skywire $(DIST)
