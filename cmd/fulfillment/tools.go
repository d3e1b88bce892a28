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
//
// It signs the canonical form of the body, as Huawei's sample verifies it
// (-form raw signs the bytes as given); the server accepts both.
func runSign(args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	key := fs.String("key", "", "access key (default: $KOOGALLERY_ACCESS_KEY)")
	body := fs.String("body", "", "request body (default: read standard input)")
	form := fs.String("form", string(koogallery.FormCanonical), "what the signature covers: canonical (the sorted body, as Huawei's sample verifies) or raw (the bytes as given)")
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
	query, err := koogallery.SignedQueryAs(koogallery.SignedForm(*form), *key, raw, time.Now())
	if errors.Is(err, koogallery.ErrNotCanonicalisable) {
		return fmt.Errorf("sign: the body is not one JSON object, so it has no canonical form (-form raw signs it as it is): %w", err)
	}
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	fmt.Fprintln(stdout, query.Encode())
	return nil
}

// runDecrypt decrypts an appInfo field (IV + base64, contract §2.6).
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
