package activities

import (
	"errors"
	"fmt"

	"github.com/fulfillment-server/fulfillment/koogallery"
	"github.com/fulfillment-server/fulfillment/store"
)

// Sealer encrypts initial credentials for storage with the marketplace's
// AES-256 field encryption keyed by the access key (contract §2.6), the same
// key the server needs anyway to answer queryInstance.
type Sealer struct {
	AccessKey string
}

// Seal encrypts a user name and password for storage.
func (s Sealer) Seal(userName, password string) (store.SealedCredentials, error) {
	u, err := koogallery.EncryptField(s.AccessKey, koogallery.AES256, userName)
	if err != nil {
		return store.SealedCredentials{}, fmt.Errorf("seal user name: %w", err)
	}
	p, err := koogallery.EncryptField(s.AccessKey, koogallery.AES256, password)
	if err != nil {
		return store.SealedCredentials{}, fmt.Errorf("seal password: %w", err)
	}
	return store.SealedCredentials{UserName: u, Password: p}, nil
}

// Open decrypts stored credentials.
func (s Sealer) Open(c store.SealedCredentials) (userName, password string, err error) {
	userName, err = koogallery.DecryptField(s.AccessKey, koogallery.AES256, c.UserName)
	if err != nil {
		return "", "", fmt.Errorf("open sealed user name: %w", err)
	}
	password, err = koogallery.DecryptField(s.AccessKey, koogallery.AES256, c.Password)
	if err != nil {
		return "", "", fmt.Errorf("open sealed password: %w", err)
	}
	return userName, password, nil
}

// SealSecret encrypts one secret (a kit app's clientSecret) for storage.
func (s Sealer) SealSecret(secret string) (string, error) {
	sealed, err := koogallery.EncryptField(s.AccessKey, koogallery.AES256, secret)
	if err != nil {
		return "", fmt.Errorf("seal secret: %w", err)
	}
	return sealed, nil
}

// OpenSecret decrypts a secret sealed by SealSecret.
func (s Sealer) OpenSecret(sealed string) (string, error) {
	if sealed == "" {
		return "", errors.New("no sealed secret")
	}
	secret, err := koogallery.DecryptField(s.AccessKey, koogallery.AES256, sealed)
	if err != nil {
		return "", fmt.Errorf("open sealed secret: %w", err)
	}
	return secret, nil
}
