package main

import (
	"context"
	"io"

	"github.com/fulfillment-server/fulfillment/emulator"
)

// runEmulator is "fulfillment emulator …": the emulator's own command line.
func runEmulator(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return emulator.Main(ctx, args, getenv, stdout)
}
