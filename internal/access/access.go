// Package access says what an HTTP request may read: everything (the
// operator token), the events of some namespaces (a read token, for
// auditors), or only what is public (block headers, counts, validations
// and anchors).
//
// A token travels as "Authorization: Bearer TOKEN" (API clients). A
// browser signs in once and then holds only a session id in the
// explorer's login cookie (Sessions), never the token. The cookie is
// HttpOnly and SameSite=Strict, and it only ever grants reading: requests
// that change the network demand the operator token in the Authorization
// header, so a forged cross-site request cannot use a signed-in browser to
// change anything.
package access

import (
	"net/http"
	"slices"
	"strings"
)

// CookieName is the explorer's login cookie; it holds a session id.
const CookieName = "cissan_session"

// Access is what a request may read.
type Access struct {
	// All is the operator's access: every event, device and namespace.
	All bool
	// Namespaces are the namespaces a read token may see; nil when All.
	Namespaces []string
	// Label names the token for people ("operator", or the read token's
	// label), so pages can say who is signed in.
	Label string
}

// Public is the access of a request without a valid token.
var Public = Access{}

// Granted reports whether the access reaches any event content at all.
func (a Access) Granted() bool { return a.All || len(a.Namespaces) > 0 }

// Allows reports whether events of namespace ns may be shown.
func (a Access) Allows(ns string) bool {
	return a.All || slices.Contains(a.Namespaces, ns)
}

// Scope returns the namespaces a search must be limited to: nil for
// everything (the operator), the token's namespaces otherwise, and an
// empty non-nil slice (matching nothing) for public access.
func (a Access) Scope() []string {
	if a.All {
		return nil
	}
	if a.Namespaces == nil {
		return []string{}
	}
	return a.Namespaces
}

// Resolver maps a presented token to its access; an unknown, revoked or
// empty token gets Public.
type Resolver func(r *http.Request, token string) Access

// Token returns the token a request presents: the bearer token if there
// is an Authorization header, else the login cookie's session id (which
// Sessions.Resolver turns into the session's token), else "".
func Token(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

// Of returns the access of request r under resolve; a nil resolve gives
// Public.
func Of(r *http.Request, resolve Resolver) Access {
	if resolve == nil {
		return Public
	}
	tok := Token(r)
	if tok == "" {
		return Public
	}
	return resolve(r, tok)
}
