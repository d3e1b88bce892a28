package store

import (
	"context"
	"fmt"
	"time"
)

// Claim remembers a request nonce until the given time and reports whether
// it was fresh. A nonce already remembered and not yet expired is a replay.
// It implements koogallery.NonceStore, so every API replica shares one
// memory that survives restarts.
//
// The claim is committed lazily (execLazy): a crash of PostgreSQL may
// forget the nonces of its last moments, and a request replayed within
// its signature window then passes the nonce check, but no more: a
// callback is recorded under its key once whatever its nonce, and a query
// only reads.
func (s *Nonces) Claim(ctx context.Context, nonce string, until time.Time) (bool, error) {
	res, err := execLazy(ctx, s.x, `
		INSERT INTO koogallery_nonces (nonce, expires_at) VALUES ($1, $2)
		ON CONFLICT (nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at
		WHERE koogallery_nonces.expires_at < now()`, nonce, until)
	if err != nil {
		return false, fmt.Errorf("claim nonce: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim nonce: %w", err)
	}
	return n == 1, nil
}

// DeleteExpiredNonces forgets nonces that expired before the given time.
func (s *Nonces) DeleteExpiredNonces(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.x.ExecContext(ctx, `DELETE FROM koogallery_nonces WHERE expires_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("delete expired nonces: %w", err)
	}
	return res.RowsAffected()
}
