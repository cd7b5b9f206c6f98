package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Token prefixes make a leaked token recognisable (by people and by secret
// scanners) and say which kind it is.
const (
	devicePrefix   = "cst_"
	operatorPrefix = "cso_"
)

// tokenBytes is the entropy of a token: 256 bits.
const tokenBytes = 32

// newToken returns prefix followed by 32 random bytes in unpadded base64url.
func newToken(prefix string) (string, error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// hashToken is how a device token is stored: SHA-256 of the whole token
// string, prefix included. A plain hash suffices, with no slow KDF such as
// bcrypt or Argon2: those protect guessable passwords, while a token holds
// 256 random bits that no amount of hashing speed makes guessable. A fast
// hash also keeps Authenticate cheap when many devices reconnect at once.
func hashToken(token string) [sha256.Size]byte {
	return sha256.Sum256([]byte(token))
}

// NewOperatorToken returns a new operator token ("cso_" and 43 characters),
// the bearer token that the HTTP API demands of operators.
func NewOperatorToken() (string, error) {
	return newToken(operatorPrefix)
}

// EqualToken reports whether a and b are the same token, in time that
// depends on neither. An empty token equals nothing, so that an unset
// operator token can never be matched by an absent Authorization header.
func EqualToken(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	// Comparing digests rather than the strings hides the lengths too.
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header, or "" if there is none.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// OperatorAuth returns an authorize function for NewHandler that admits
// requests bearing token. An empty token admits nothing.
func OperatorAuth(token string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return EqualToken(BearerToken(r), token)
	}
}

// LoadOrCreateOperatorToken reads the operator token from the file at path,
// or, if there is no such file, creates one holding a new token, readable by
// its owner only. It is how a node and the CLI come to share the token.
func LoadOrCreateOperatorToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("operator token %s: file is empty", path)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("operator token: %w", err)
	}
	tok, err := NewOperatorToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("operator token: %w", err)
	}
	// O_EXCL: if another process created the file meanwhile, use its token.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateOperatorToken(path)
	}
	if err != nil {
		return "", fmt.Errorf("operator token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("operator token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("operator token: %w", err)
	}
	return tok, nil
}
