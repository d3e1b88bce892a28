package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fulfillment-server/fulfillment/koogallery"
)

// runSign prints the signature query string for a body, as the marketplace
// would send it, so that a production-interface call can be made with curl:
//
//	BODY='{"activity":"newInstance",...}'
//	curl -X POST "http://localhost:8080/produce?$(fulfillment sign -body "$BODY")" -d "$BODY"
func runSign(args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	key := fs.String("key", "", "access key (default: $KOOGALLERY_ACCESS_KEY)")
	body := fs.String("body", "", "request body, signed byte for byte (default: read standard input)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		*key = getenv("KOOGALLERY_ACCESS_KEY")
	}
	if *key == "" {
		return errors.New("sign: no access key: pass -key or set KOOGALLERY_ACCESS_KEY")
	}
	raw := []byte(*body)
	if *body == "" {
		var err error
		if raw, err = io.ReadAll(io.LimitReader(stdin, 1<<20)); err != nil {
			return fmt.Errorf("sign: read body: %w", err)
		}
	}
	fmt.Fprintln(stdout, koogallery.SignedQuery(*key, raw, time.Now()).Encode())
	return nil
}

// runDecrypt decrypts an appInfo field (IV + base64, SPEC §2.6).
func runDecrypt(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("decrypt", flag.ContinueOnError)
	key := fs.String("key", "", "access key (default: $KOOGALLERY_ACCESS_KEY)")
	aes128 := fs.Bool("aes128", false, "the field was encrypted with AES-128 (default AES-256)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		*key = getenv("KOOGALLERY_ACCESS_KEY")
	}
	if *key == "" {
		return errors.New("decrypt: no access key: pass -key or set KOOGALLERY_ACCESS_KEY")
	}
	if fs.NArg() != 1 {
		return errors.New("decrypt: give exactly one encrypted value")
	}
	size := koogallery.AES256
	if *aes128 {
		size = koogallery.AES128
	}
	plain, err := koogallery.DecryptField(*key, size, strings.TrimSpace(fs.Arg(0)))
	if err != nil {
		return fmt.Errorf("decrypt: %w", err)
	}
	fmt.Fprintln(stdout, plain)
	return nil
}
