package main

import (
	"context"
	"io"

	"github.com/fulfillment-server/fulfillment/bench/loadgen"
)

// runBench is "fulfillment bench …": the load generator's own command line.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return loadgen.Main(ctx, args, getenv, stdout)
}
