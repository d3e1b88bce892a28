// Command fulfillment is the KooGallery fulfillment server: the marketplace's
// production interface, the instance workflows' worker, and the tools around
// them. Run "fulfillment help" for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fulfillment-server/fulfillment/internal/config"
)

const usage = `fulfillment: the KooGallery SaaS fulfillment server.

Usage: fulfillment <command> [flags]

Commands:
  serve         run the API and the worker in one process (applies migrations first)
  api           run only the HTTP API (production interface, admin API, relay)
  worker        run only the Temporal worker of the instance workflows
  migrate       apply the database migrations and exit (-create-db: create the database if missing)
  sign          sign a request body like the marketplace (contract §2.2); prints the query string
                (-kit: a 联营 kit sync, contract §12.3; prints the x-sign, x-timestamp and x-nonce headers)
                (-v1 name=value…: a V1 GET call, contract §2.5; prints its query string with timeStamp and authToken)
  kit-keygen    write the RSA key pair of the 联营 kit's app credential (contract §12.6): -out DIR
  kit-encrypt   encrypt a client secret as the marketplace does for applicationSync: [-public FILE] SECRET
  decrypt       decrypt an appInfo field (contract §2.6) with the access key
  emulator      KooGallery, played locally: 'fulfillment emulator help'
  bench         fire signed callbacks at a running server and measure it: 'fulfillment bench -h'
  env           list every environment variable the binary reads, with its default and meaning
  help          show this text

Configuration comes from environment variables: 'fulfillment env' lists them.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fulfillment:", err)
		os.Exit(1)
	}
}

// errUsage asks for the usage text to be shown.
var errUsage = errors.New("unknown command; run 'fulfillment help'")

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "sign":
		return runSign(rest, getenv, stdin, stdout)
	case "decrypt":
		return runDecrypt(rest, getenv, stdout)
	case "kit-keygen":
		return runKitKeygen(rest, stdout)
	case "kit-encrypt":
		return runKitEncrypt(rest, getenv, stdout)
	case "emulator":
		return runEmulator(ctx, rest, getenv, stdout)
	case "bench":
		return runBench(ctx, rest, getenv, stdout)
	case "env":
		fmt.Fprint(stdout, config.Markdown(envVariables()))
		return nil
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := cfg.Logger()
	switch cmd {
	case "serve":
		return runServe(ctx, cfg, log, true, true)
	case "api":
		return runServe(ctx, cfg, log, true, false)
	case "worker":
		return runServe(ctx, cfg, log, false, true)
	case "migrate":
		return runMigrate(ctx, cfg, log, rest)
	default:
		return errUsage
	}
}
