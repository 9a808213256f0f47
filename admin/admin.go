// Package admin is the visor's administration API, defined once and served
// over HTTP+JSON to every controller: `skywire cli` on the visor's cli_addr
// (a unix socket by default, or TCP with a bearer token), and the hypervisor.
//
// Each operation is an Op value naming its HTTP method, path, request and
// response types, declared in the file of its group (info.go, …). The visor
// attaches a function to each Op with Handle; controllers call it with Call.
// There is no hand-written client, server or mock per operation.
//
// Wire form (docs/protocol.md, "Admin API"):
//
//	request:   METHOD /v1/… with a JSON body (none for GET)
//	success:   200, the JSON response
//	failure:   4xx/5xx, {"error":{"code":"not_found","message":"…"}}
//	TCP only:  "Authorization: Bearer <token>" on every request
package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// Op is one operation of the API. Req is decoded from the request body
// (nothing for GET); Resp is the success body.
type Op[Req, Resp any] struct {
	Method string
	Path   string
	// Reads marks a POST that changes nothing (it takes a body, so it is
	// not a GET): the hypervisor does not put it in its audit log.
	Reads bool
}

func (op Op[Req, Resp]) route() Route {
	return Route{Method: op.Method, Path: op.Path, Reads: op.Reads || op.Method == http.MethodGet}
}

// Route is an operation as HTTP sees it: what the hypervisor mounts under
// /api/visors/{pk}.
type Route struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Reads  bool   `json:"reads"`  // changes nothing on the visor
	Stream bool   `json:"stream"` // a Stream: the answer goes on (ndjson)
}

// routes are every operation of the API, in declaration order.
var routes []Route

// define adds op to Routes; every operation of the API is declared with it.
func define[O interface{ route() Route }](op O) O {
	routes = append(routes, op.route())
	return op
}

// Routes lists every operation of the API.
func Routes() []Route { return slices.Clone(routes) }

// Empty is the request or response of an operation that has none.
type Empty struct{}

// Error codes, each with its HTTP status.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTimeout      = "timeout"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

var codeStatus = map[string]int{
	CodeBadRequest:   http.StatusBadRequest,
	CodeUnauthorized: http.StatusUnauthorized,
	CodeNotFound:     http.StatusNotFound,
	CodeConflict:     http.StatusConflict,
	CodeTimeout:      http.StatusGatewayTimeout,
	CodeUnavailable:  http.StatusServiceUnavailable,
	CodeInternal:     http.StatusInternalServerError,
}

// Error is a failed operation as the caller sees it. Handlers return one to
// choose the code; any other error becomes CodeInternal.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Status is the HTTP status for e's code.
func (e *Error) Status() int {
	if s, ok := codeStatus[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Errorf returns an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

type errorBody struct {
	Error *Error `json:"error"`
}
