package registry

// Device logins over HTTP, for hubs that run in other processes than the
// registry:
//
//	POST /v1/auth  {"device_uid": "...", "token": "..."}   (a node's signature, nodeauth.go, or the operator token)
//	200 the device                           the token is right and the device active
//	401 {"error":"bad device uid or token"}  wrong token, or no such device (not told apart)
//	403 {"error":"device is inactive"}       right token, deactivated device
//	403 {"error":"device is revoked"}        right token, revoked device
//
// As with Registry.Authenticate, a device's status is revealed only to a
// caller holding its token. The token travels in the body, never in a URL,
// and neither side logs it.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// AuthRequest is the body of POST /v1/auth.
type AuthRequest struct {
	UID   string `json:"device_uid"`
	Token string `json:"token"`
}

// msgBadCredentials answers a wrong token or an unknown device. A 401 with
// any other message is the operator token being refused.
const msgBadCredentials = "bad device uid or token"

func (h *handler) auth(w http.ResponseWriter, req *http.Request) {
	var body AuthRequest
	if !decodeBody(w, req, &body) {
		return
	}
	d, err := h.reg.Authenticate(req.Context(), body.UID, body.Token)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, d)
	case errors.Is(err, ErrBadToken):
		writeError(w, http.StatusUnauthorized, msgBadCredentials)
	case errors.Is(err, ErrInactive):
		writeError(w, http.StatusForbidden, ErrInactive.Error())
	case errors.Is(err, ErrRevoked):
		writeError(w, http.StatusForbidden, ErrRevoked.Error())
	default:
		writeErr(w, req, err) // names the uid, never the token
	}
}

// Authenticate asks the registry whether token is uid's current token and
// the device active, and returns the device. Refusals are ErrBadToken,
// ErrInactive and ErrRevoked, as from Registry.Authenticate; a registry
// that does not answer (network error, timeout, 5xx) is ErrUnreachable.
// Any other failure, such as the registry refusing the node's signature
// or the operator token, matches none of these.
func (c *Client) Authenticate(ctx context.Context, uid, token string) (Device, error) {
	var d Device
	err := c.do(ctx, http.MethodPost, "/v1/auth", AuthRequest{UID: uid, Token: token}, &d)
	if err == nil {
		return d, nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch {
		case ae.StatusCode == http.StatusUnauthorized && ae.Message == msgBadCredentials:
			err = ErrBadToken
		case ae.StatusCode == http.StatusForbidden && ae.Message == ErrInactive.Error():
			err = ErrInactive
		case ae.StatusCode == http.StatusForbidden && ae.Message == ErrRevoked.Error():
			err = ErrRevoked
		}
	}
	return Device{}, fmt.Errorf("authenticate device %q: %w", uid, err)
}
