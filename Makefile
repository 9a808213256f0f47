# skywire: build, test, release. `make help` lists the targets.

GO       ?= go
PKG      := github.com/skyfleet/skywire
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -s -w -X $(PKG)/internal/buildinfo.Version=$(VERSION) \
            -X $(PKG)/internal/buildinfo.Commit=$(COMMIT) -X $(PKG)/internal/buildinfo.Date=$(DATE)
PREFIX   ?= /usr/local
SYSTEMDDIR ?= /etc/systemd/system
DIST     ?= dist
# os/arch[/arm version]: every one must compile (`make release`).
RELEASE_TARGETS := linux/amd64 linux/arm64 linux/arm/7 linux/arm/6 linux/riscv64 windows/amd64 darwin/amd64 darwin/arm64
# The program names that run a role (`skywire --help` lists them; a test
# keeps the two lists equal): `make install` and the .deb link them.
ROLE_LINKS := skywire-visor skywire-cli hypervisor skywire-hypervisor skychat skysocks skysocks-client vpn-server vpn-client
# nfpm makes the .deb (a build tool fetched through the Go module proxy,
# not a dependency of skywire).
NFPM     ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
# A Debian version from git describe: v1.2.3-4-gabc → 1.2.3+4.gabc; a bare
# commit → 0.0.0+git.<commit>.
VERSION_DEB := $(shell echo '$(VERSION)' | sed -E '/^v?[0-9]+\.[0-9]+/!s/^/0.0.0-git./; s/^v//; s/-/+/; s/-/./g')
RUN_DIR  := run

.PHONY: help build install test lint cross bench release run demo clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 10

build: ## build ./skywire (static, CGO_ENABLED=0)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o skywire .

install: build ## install skywire, its role names (links), man page, completions and systemd unit under $(PREFIX)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d $(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 skywire $(DESTDIR)$(PREFIX)/bin/skywire
	@for n in $(ROLE_LINKS); do ln -sfn skywire $(DESTDIR)$(PREFIX)/bin/$$n; done
	./skywire man | gzip -9n > $(DESTDIR)$(PREFIX)/share/man/man1/skywire.1.gz
	./skywire completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/skywire
	./skywire completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_skywire
	./skywire completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/skywire.fish
	sed 's|/usr/bin/skywire|$(PREFIX)/bin/skywire|' packaging/skywire.service > $(DESTDIR)$(SYSTEMDDIR)/skywire.service
	@echo "installed; for the system service see the top of $(SYSTEMDDIR)/skywire.service"

lint: ## gofmt and go vet
	@files=$$(find . -name '*.go' -not -path './.git/*' -not -path './$(DIST)/*'); \
	 bad=$$(gofmt -l $$files); \
	 if [ -n "$$bad" ]; then echo "not gofmt-formatted (run gofmt -w):"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

cross: ## type-check the tree for the other release platforms (fast; `make release` links them)
	GOOS=windows GOARCH=amd64 $(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=linux GOARCH=arm GOARM=6 $(GO) vet ./...

test: lint cross ## lint, cross, every test with the race detector (unit, in-process, processes, repo guards), then `make release` and `make install` checked
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run TestTwoHundredVisors ./internal/testnet # skipped under -race: too slow there
	@rm -rf $(CURDIR)/.test-release $(CURDIR)/.test-install
	$(MAKE) --no-print-directory release DIST=$(CURDIR)/.test-release
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/.test-install PREFIX=/usr SYSTEMDDIR=/etc/systemd/system
	SKYWIRE_RELEASE_DIR=$(CURDIR)/.test-release SKYWIRE_INSTALL_DIR=$(CURDIR)/.test-install $(GO) test -count=1 ./internal/release
	@rm -rf $(CURDIR)/.test-release $(CURDIR)/.test-install

bench: ## benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./...

release: build ## every release target: tar.gz (zip for Windows) with README, man page, completions and unit; .debs; SHA256SUMS
	@rm -rf $(DIST) && mkdir -p $(DIST)/stage
	@./skywire man | gzip -9n > $(DIST)/stage/skywire.1.gz
	@./skywire completion bash > $(DIST)/stage/skywire.bash
	@./skywire completion zsh > $(DIST)/stage/_skywire
	@./skywire completion fish > $(DIST)/stage/skywire.fish
	@./skywire completion powershell > $(DIST)/stage/skywire.ps1
	@set -e; for t in $(RELEASE_TARGETS); do \
	  os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=""; name=$$arch; \
	  if [ "$$arch" = arm ]; then arm=$${rest#*/}; name=armv$$arm; fi; \
	  ext=""; [ "$$os" = windows ] && ext=.exe; \
	  pkg=skywire-$(VERSION)-$$os-$$name; dir=$(DIST)/stage/$$pkg; mkdir -p $$dir; \
	  echo "  $$pkg"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$dir/skywire$$ext .; \
	  cp README.md $$dir/; \
	  if [ "$$os" = windows ]; then \
	    cp $(DIST)/stage/skywire.ps1 $$dir/; (cd $(DIST)/stage && zip -qr ../$$pkg.zip $$pkg); \
	  else \
	    cp $(DIST)/stage/skywire.1.gz $(DIST)/stage/skywire.bash $(DIST)/stage/_skywire $(DIST)/stage/skywire.fish $$dir/; \
	    [ "$$os" = linux ] && cp packaging/skywire.service $$dir/; \
	    tar -C $(DIST)/stage -czf $(DIST)/$$pkg.tar.gz $$pkg; \
	  fi; \
	  deb=""; case "$$os/$$name" in linux/amd64) deb=amd64;; linux/arm64) deb=arm64;; linux/armv6) deb=armhf;; linux/riscv64) deb=riscv64;; esac; \
	  if [ -n "$$deb" ]; then \
	    sed -e "s|@BIN@|$$dir/skywire|; s|@STAGE@|$(DIST)/stage|g; s|@ARCH@|$$deb|; s|@VERSION@|$(VERSION_DEB)|" packaging/nfpm.yaml > $(DIST)/stage/nfpm.yaml; \
	    $(NFPM) pkg -f $(DIST)/stage/nfpm.yaml -p deb -t $(DIST)/skywire_$(VERSION_DEB)_$$deb.deb >/dev/null; \
	    echo "  skywire_$(VERSION_DEB)_$$deb.deb"; \
	  fi; \
	done
	@rm -rf $(DIST)/stage
	@cd $(DIST) && sha256sum *.tar.gz *.zip *.deb > SHA256SUMS && echo "  $(DIST)/SHA256SUMS"

demo: build ## build and run `skywire demo`: a private network on this machine, SOCKS5 on 127.0.0.1:1080 over 2 hops
	./skywire demo

run: build ## build and run a visor here (config and state in ./run; Ctrl-C stops it)
	@mkdir -p $(RUN_DIR)
	@test -f $(RUN_DIR)/skywire-config.json || ./skywire visor gen-config -o $(RUN_DIR)/skywire-config.json
	./skywire visor run -c $(RUN_DIR)/skywire-config.json

clean: ## remove build outputs
	rm -rf skywire $(DIST)
