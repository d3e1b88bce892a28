package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fulfillment-server/fulfillment/emulator"
)

// runEmulator is "fulfillment emulator …": the emulator's own command line.
func runEmulator(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return emulator.Main(ctx, program(os.Args[0]), args, getenv, stdout)
}

// program is the binary as the user ran it, for the commands the CLI
// prints to be pasted: bin/fulfillment from the repository, the name alone
// when found on the PATH, go run ./cmd/fulfillment for a binary that go run
// or go test built in a temporary directory.
func program(arg0 string) string {
	if !strings.ContainsRune(arg0, filepath.Separator) {
		return arg0
	}
	abs, err := filepath.Abs(arg0)
	if err != nil {
		return arg0
	}
	if tmp := os.TempDir(); strings.HasPrefix(abs, tmp+string(filepath.Separator)) && strings.Contains(abs, "go-build") {
		return "go run ./cmd/fulfillment"
	}
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return abs
	}
	if !strings.ContainsRune(rel, filepath.Separator) {
		return "./" + rel
	}
	return rel
}
