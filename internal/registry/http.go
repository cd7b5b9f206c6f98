package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
)

// maxBody caps a request body; a device registration is a few hundred bytes.
const maxBody = 64 << 10

// AddRequest is the body of POST /v1/devices.
type AddRequest struct {
	Namespace string `json:"namespace"`
	UID       string `json:"device_uid"`
	// RequireCert registers a device that must log in with a client
	// certificate (see Device.RequireCert).
	RequireCert bool `json:"require_cert,omitempty"`
}

// DeviceToken is a device with the token just issued for it: the answer to
// an add or a rotate, and the only time the token is ever shown.
type DeviceToken struct {
	Device
	Token string `json:"token"`
}

// ListResponse is the answer to GET /v1/devices. Next is the After of the
// following page, or "" on the last page.
type ListResponse struct {
	Devices []Device `json:"devices"`
	Next    string   `json:"next"`
}

// errorBody is every error answer.
type errorBody struct {
	Error string `json:"error"`
}

// actions are the POST /v1/devices/{uid}/{action} routes.
var actions = map[string]bool{"deactivate": true, "reactivate": true, "revoke": true, "rotate": true}

// NewHandler serves the registry's operator API under /v1/devices. Every
// request must satisfy authorize (OperatorAuth builds one); others get 401.
//
//	POST /v1/devices                        {"namespace","device_uid"[,"require_cert"]} -> 201 device + "token"
//	GET  /v1/devices?namespace=&status=&after=&limit=   -> {"devices":[...],"next":""}
//	GET  /v1/devices/{uid}                  -> device
//	POST /v1/devices/{uid}/deactivate       -> device
//	POST /v1/devices/{uid}/reactivate       -> device
//	POST /v1/devices/{uid}/revoke           -> device
//	POST /v1/devices/{uid}/rotate           -> device + "token"
//	POST /v1/auth                           {"device_uid","token"} -> device (see auth.go)
//	POST /v1/auth/certificate               {"device_uid"} -> device, for a hub admitting it by its client certificate
//	POST /v1/limits                         {"device_uid" or "namespace", "max_rate", "max_bytes_rate"} (see limits.go)
//
// Errors are {"error":"..."} with 400 (malformed request), 401, 403 (a
// login by an inactive or revoked device), 404 (no such device), 409 (device
// exists, or is revoked), 413 (body over 64 KiB) or 500.
func NewHandler(r *Registry, authorize func(*http.Request) bool) http.Handler {
	h := &handler{reg: r}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/devices", h.add)
	mux.HandleFunc("GET /v1/devices", h.list)
	mux.HandleFunc("GET /v1/devices/{uid}", h.get)
	mux.HandleFunc("POST /v1/devices/{uid}/deactivate", h.transition(r.Deactivate))
	mux.HandleFunc("POST /v1/devices/{uid}/reactivate", h.transition(r.Reactivate))
	mux.HandleFunc("POST /v1/devices/{uid}/revoke", h.transition(r.Revoke))
	mux.HandleFunc("POST /v1/devices/{uid}/rotate", h.rotate)
	mux.HandleFunc("POST /v1/auth", h.auth)
	mux.HandleFunc("POST /v1/auth/certificate", h.certificateDevice)
	mux.HandleFunc("POST /v1/limits", h.setLimits)
	// Method-less patterns catch what the routes above do not, so that
	// every answer, 404 and 405 included, is JSON.
	mux.HandleFunc("/v1/devices", methodNotAllowed("GET, POST"))
	mux.HandleFunc("/v1/devices/{uid}", methodNotAllowed("GET"))
	mux.HandleFunc("/v1/auth", methodNotAllowed("POST"))
	mux.HandleFunc("/v1/auth/certificate", methodNotAllowed("POST"))
	mux.HandleFunc("/v1/limits", methodNotAllowed("POST"))
	mux.HandleFunc("/v1/devices/{uid}/{action}", func(w http.ResponseWriter, req *http.Request) {
		if actions[req.PathValue("action")] {
			methodNotAllowed("POST")(w, req)
			return
		}
		writeError(w, http.StatusNotFound, "no such route")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	return operatorOnly(authorize, mux)
}

// operatorOnly serves h to requests that authorize admits (the operator
// token, or a node's signature on the routes NodeGate lets through), and
// answers 401 to the rest.
func operatorOnly(authorize func(*http.Request) bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if authorize == nil || !authorize(req) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cissan"`)
			writeError(w, http.StatusUnauthorized, "operator bearer token required")
			return
		}
		h.ServeHTTP(w, req)
	})
}

type handler struct {
	reg *Registry
}

func (h *handler) add(w http.ResponseWriter, req *http.Request) {
	var body AddRequest
	if !decodeBody(w, req, &body) {
		return
	}
	d, tok, err := h.reg.add(req.Context(), body.Namespace, body.UID, body.RequireCert)
	if err != nil {
		writeErr(w, req, err)
		return
	}
	writeJSON(w, http.StatusCreated, DeviceToken{Device: d, Token: tok})
}

func (h *handler) list(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	f := ListFilter{Namespace: q.Get("namespace"), Status: Status(q.Get("status")), After: q.Get("after")}
	limit := DefaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer in 1..%d", MaxListLimit))
			return
		}
		limit = n
	}
	// One device more than the page tells whether another page follows,
	// so that the last page says so and clients need not ask again.
	devs, err := h.reg.list(req.Context(), f, limit+1)
	if err != nil {
		writeErr(w, req, err)
		return
	}
	resp := ListResponse{Devices: devs}
	if len(devs) > limit {
		resp.Devices = devs[:limit]
		resp.Next = devs[limit-1].UID
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) get(w http.ResponseWriter, req *http.Request) {
	d, err := h.reg.Get(req.Context(), req.PathValue("uid"))
	if err != nil {
		writeErr(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *handler) transition(op func(context.Context, string) (Device, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if !emptyBody(w, req) {
			return
		}
		d, err := op(req.Context(), req.PathValue("uid"))
		if err != nil {
			writeErr(w, req, err)
			return
		}
		writeJSON(w, http.StatusOK, d)
	}
}

func (h *handler) rotate(w http.ResponseWriter, req *http.Request) {
	if !emptyBody(w, req) {
		return
	}
	d, tok, err := h.reg.Rotate(req.Context(), req.PathValue("uid"))
	if err != nil {
		writeErr(w, req, err)
		return
	}
	writeJSON(w, http.StatusOK, DeviceToken{Device: d, Token: tok})
}

// decodeBody reads exactly one JSON object into v, refusing unknown fields,
// trailing data and bodies over maxBody. On failure it has answered.
func decodeBody(w http.ResponseWriter, req *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("body must hold a single JSON object")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return true
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxBody))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "request body must be a JSON object")
	default:
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
	}
	return false
}

// emptyBody accepts an action with no body, or an empty JSON object (which
// some HTTP clients send by habit), and refuses anything else.
func emptyBody(w http.ResponseWriter, req *http.Request) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxBody))
		return false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return false
	}
	if len(b) == 0 {
		return true
	}
	var empty struct{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&empty); err != nil || dec.Decode(&empty) != io.EOF {
		writeError(w, http.StatusBadRequest, "this action takes no request body")
		return false
	}
	return true
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", req.Method, allow))
	}
}

// writeErr answers with the status that err's class calls for. Internal
// errors are logged and not shown, since they may name files and queries.
func writeErr(w http.ResponseWriter, req *http.Request, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrExists), errors.Is(err, ErrRevoked):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, "request canceled")
	default:
		slog.ErrorContext(req.Context(), "registry api", "method", req.Method, "path", req.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // answers may carry tokens
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
