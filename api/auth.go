package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fulfillment-server/fulfillment/internal/fault"
)

// bearerAuth admits "Authorization: Bearer <token>" for any of the tokens
// that are set; names says which settings they are, for the refusal.
// Digests of equal length are compared in constant time, so neither a
// token's content nor its length leaks through timing.
func bearerAuth(log *slog.Logger, names string, tokens ...string) gin.HandlerFunc {
	var digests [][sha256.Size]byte
	for _, t := range tokens {
		if t != "" {
			digests = append(digests, sha256.Sum256([]byte(t)))
		}
	}
	return func(c *gin.Context) {
		token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(token))
		match := 0
		for _, want := range digests {
			match |= subtle.ConstantTimeCompare(got[:], want[:])
		}
		if !ok || match != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="fulfillment"`)
			fault.Respond(c, log, fault.Unauthorized("missing or wrong bearer token ("+names+")"))
			return
		}
		c.Next()
	}
}
