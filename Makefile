# Binaries that need no Go toolchain where they run.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/tidegate/tidegate/internal/cli.Version=$(VERSION)
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64

.PHONY: build release test first-answer

# ./tidegate for this machine.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o tidegate ./cmd/tidegate

# dist/tidegate-VERSION-OS-ARCH[.exe] for every platform, and their SHA-256 sums
# (what .github/workflows/release.yml publishes on a tag).
release:
	rm -rf dist && mkdir -p dist
	for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags '$(LDFLAGS)' \
			-o dist/tidegate-$(VERSION)-$$os-$$arch$$ext ./cmd/tidegate || exit 1; \
	done
	cd dist && sha256sum tidegate-* > SHA256SUMS

test:
	go test -race -count=1 ./...

# Seconds from launch to the first chat answer: make first-answer MODE=cold|warm|binary
first-answer:
	scripts/first-answer.sh $(MODE)
