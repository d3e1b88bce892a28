package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
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
//
// With -kit it signs a 联营 kit sync instead (contract §12.3), with the
// kit's key, and prints the x-sign, x-timestamp and x-nonce headers as
// curl arguments:
//
//	BODY='{"tenantId":"T","flag":0,...}'
//	curl http://localhost:8080/produce/produceAPI/v2/tenantSync $(fulfillment sign -kit -body "$BODY") -d "$BODY"
//
// With -v1 it signs a V1 GET call instead (contract §2.5), with the V1
// key: the arguments are the call's parameters as name=value, unencoded,
// and it prints the whole query string, timeStamp (now) and authToken
// added, every value percent-encoded:
//
//	curl "http://localhost:8080/produce?$(fulfillment sign -v1 activity=queryInstance instanceId=I1)"
func runSign(args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	key := fs.String("key", "", "access key (default: $KOOGALLERY_ACCESS_KEY, with -kit $KOOGALLERY_KIT_ACCESS_KEY, with -v1 $KOOGALLERY_V1_ACCESS_KEY)")
	body := fs.String("body", "", "request body (default: read standard input)")
	form := fs.String("form", string(koogallery.FormCanonical), "what the signature covers: canonical (the sorted body, as Huawei's sample verifies) or raw (the bytes as given)")
	license := fs.Bool("license", false, "sign a license-code callback (contract §13.5) with $KOOGALLERY_LICENSE_ACCESS_KEY instead of the basic key")
	kit := fs.Bool("kit", false, "sign a 联营 kit sync (contract §12.3): print the x-sign, x-timestamp and x-nonce headers as curl -H arguments (-H x-sign:…)")
	v1 := fs.Bool("v1", false, "sign a V1 GET call (contract §2.5) whose parameters are the arguments, name=value: print its query string with timeStamp and authToken")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *v1 {
		return runSignV1(fs, *kit, *key, getenv, stdout)
	}
	keyVar := "KOOGALLERY_ACCESS_KEY"
	switch {
	case *kit && *license:
		return errors.New("sign: -kit and -license are different interfaces; choose one")
	case *kit:
		keyVar = "KOOGALLERY_KIT_ACCESS_KEY"
	case *license:
		keyVar = "KOOGALLERY_LICENSE_ACCESS_KEY"
	}
	if *key == "" {
		*key = getenv(keyVar)
	}
	if *key == "" {
		return fmt.Errorf("sign: no access key: pass -key or set %s", keyVar)
	}
	raw := []byte(*body)
	if *body == "" {
		var err error
		if raw, err = io.ReadAll(io.LimitReader(stdin, 1<<20)); err != nil {
			return fmt.Errorf("sign: read body: %w", err)
		}
	}
	if *kit {
		h, err := koogallery.SignedKitHeaders(koogallery.SignedForm(*form), *key, raw, time.Now())
		if err != nil {
			return signError(err)
		}
		// name:value holds no blank, so the shell passes each -H whole
		// without quotes: curl … $(fulfillment sign -kit …).
		args := make([]string, 0, 6)
		for _, name := range []string{koogallery.HeaderKitSign, koogallery.HeaderKitTimestamp, koogallery.HeaderKitNonce} {
			args = append(args, "-H", name+":"+h.Get(name))
		}
		fmt.Fprintln(stdout, strings.Join(args, " "))
		return nil
	}
	query, err := koogallery.SignedQueryAs(koogallery.SignedForm(*form), *key, raw, time.Now())
	if err != nil {
		return signError(err)
	}
	fmt.Fprintln(stdout, query.Encode())
	return nil
}

// runSignV1 prints the signed query string of a V1 call whose parameters
// are fs's arguments (name=value, as the marketplace means them, before
// URL encoding). -body and -form sign a body, which a V1 call has none
// of, so they are refused with -v1, as is -kit.
func runSignV1(fs *flag.FlagSet, kit bool, key string, getenv func(string) string, stdout io.Writer) error {
	if kit {
		return runSignV1Kit(fs, key, getenv, stdout)
	}
	var bodyFlags bool
	fs.Visit(func(f *flag.Flag) { bodyFlags = bodyFlags || f.Name == "body" || f.Name == "form" })
	if bodyFlags {
		return errors.New("sign: a V1 call has no body; give its parameters as name=value arguments, not -body or -form")
	}
	if key == "" {
		key = getenv("KOOGALLERY_V1_ACCESS_KEY")
	}
	if key == "" {
		return errors.New("sign: no access key: pass -key or set KOOGALLERY_V1_ACCESS_KEY")
	}
	if fs.NArg() == 0 {
		return errors.New("sign: give the V1 call's parameters as name=value arguments (activity=… and the rest)")
	}
	params := url.Values{}
	for _, arg := range fs.Args() {
		name, value, ok := strings.Cut(arg, "=")
		if !ok || name == "" {
			return fmt.Errorf("sign: argument %q is not name=value", arg)
		}
		if _, dup := params[name]; dup {
			return fmt.Errorf("sign: parameter %s is given twice", name)
		}
		if name == koogallery.ParamTimeStamp || name == koogallery.ParamAuthToken {
			return fmt.Errorf("sign: %s is added by sign; leave it out", name)
		}
		params.Set(name, value)
	}
	signed, err := koogallery.SignedV1Query(key, params, time.Now())
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	fmt.Fprintln(stdout, koogallery.EncodeV1Query(signed))
	return nil
}

// runSignV1Kit prints the authToken header of a V1 kit sync (contract
// §12.10) as a curl -H argument: computed with the V1 key over the body's
// members, its own timeStamp included (the body must carry one).
func runSignV1Kit(fs *flag.FlagSet, key string, getenv func(string) string, stdout io.Writer) error {
	body := fs.Lookup("body").Value.String()
	if body == "" || fs.NArg() > 0 {
		return errors.New("sign: a V1 kit sync is signed over its body: give it with -body (with its timeStamp), and no name=value arguments")
	}
	if key == "" {
		key = getenv("KOOGALLERY_V1_ACCESS_KEY")
	}
	if key == "" {
		return errors.New("sign: no access key: pass -key or set KOOGALLERY_V1_ACCESS_KEY")
	}
	token, err := koogallery.SignV1Kit(key, []byte(body))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	// The token is base64: no blank, so the shell passes it whole.
	fmt.Fprintln(stdout, "-H", koogallery.HeaderV1KitAuthToken+":"+token)
	return nil
}

func signError(err error) error {
	if errors.Is(err, koogallery.ErrNotCanonicalisable) {
		return fmt.Errorf("sign: the body is not one JSON object, so it has no canonical form (-form raw signs it as it is): %w", err)
	}
	return fmt.Errorf("sign: %w", err)
}

// runKitKeygen writes the merchant's RSA key pair for the 联营 kit's app
// credential (contract §12.6): kit-private.pem (PKCS#8, mode 0600), which
// decrypts the clientSecret the marketplace sends, and kit-public.pem, to
// upload with the credential application. Existing files are never
// overwritten: a replaced private key could no longer decrypt what the
// marketplace encrypts with the uploaded public key.
func runKitKeygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kit-keygen", flag.ContinueOnError)
	out := fs.String("out", ".", "directory to write kit-private.pem and kit-public.pem in")
	bits := fs.Int("bits", 3072, "RSA key size (the marketplace requires at least 3072)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("kit-keygen: unexpected arguments; use -out DIR")
	}
	privPath, pubPath := filepath.Join(*out, "kit-private.pem"), filepath.Join(*out, "kit-public.pem")
	for _, path := range []string{privPath, pubPath} {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("kit-keygen: %s exists; not overwriting it (move it away first, and keep an old private key while the marketplace may still use its public key)", path)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("kit-keygen: %w", err)
		}
	}
	priv, pub, err := koogallery.GenerateKitKey(*bits)
	if err != nil {
		return fmt.Errorf("kit-keygen: %w", err)
	}
	if err := writeNewFile(privPath, priv, 0o600); err != nil {
		return fmt.Errorf("kit-keygen: %w", err)
	}
	if err := writeNewFile(pubPath, pub, 0o644); err != nil {
		return fmt.Errorf("kit-keygen: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (keep it secret; the server decrypts the kit's clientSecret with it)\n", privPath)
	fmt.Fprintf(stdout, "wrote %s (upload it with the app credential: 卖家中心 > 应用工具 > 应用凭证管理)\n", pubPath)
	return nil
}

// writeNewFile creates path with data, failing if it exists.
func writeNewFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
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

// runKitEncrypt encrypts a client secret with the merchant's public key as
// the marketplace does for applicationSync (contract §12.6: RSA-OAEP with
// SHA-256 and MGF1-SHA-1, base64), so that the kit can be played by hand.
func runKitEncrypt(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kit-encrypt", flag.ContinueOnError)
	defaultKey := getenv("EMULATOR_KIT_PUBLIC_KEY_FILE")
	if defaultKey == "" {
		defaultKey = filepath.Join(".data", "kit", "kit-public.pem")
	}
	public := fs.String("public", defaultKey, "the merchant's public key (PEM)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("kit-encrypt: give the client secret to encrypt")
	}
	key, err := koogallery.LoadKitPublicKey(*public)
	if err != nil {
		return fmt.Errorf("kit-encrypt: %w", err)
	}
	encrypted, err := koogallery.EncryptClientSecret(key, fs.Arg(0))
	if err != nil {
		return fmt.Errorf("kit-encrypt: %w", err)
	}
	fmt.Fprintln(stdout, encrypted)
	return nil
}
