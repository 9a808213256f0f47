package configfile

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Problems collects every problem found by a Validate, so the user sees all
// of them at once. The zero value is ready to use.
type Problems struct {
	errs []error
}

// Add records that the field at path is wrong. value is quoted in the message
// so the user sees exactly what was read.
func (p *Problems) Add(path string, value any, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s, ok := value.(string); ok {
		value = strconv.Quote(s)
	}
	if value != nil {
		msg = fmt.Sprintf("%v: %s", value, msg)
	}
	p.errs = append(p.errs, &FieldError{Path: path, Err: errors.New(msg)})
}

// AddErr records err for the field at path.
func (p *Problems) AddErr(path string, err error) {
	if err != nil {
		p.errs = append(p.errs, &FieldError{Path: path, Err: err})
	}
}

// Err returns nil if nothing was recorded, else all problems joined (one per
// line).
func (p *Problems) Err() error { return errors.Join(p.errs...) }

// URL checks an optional service URL: empty, or absolute http(s) with a host.
func (p *Problems) URL(path, value string) {
	if value == "" {
		return
	}
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.Add(path, value, "want an http:// or https:// URL such as http://127.0.0.1:9090")
		return
	}
	if u.RawQuery != "" || u.Fragment != "" {
		p.Add(path, value, "a service URL takes no query or fragment")
	}
}

// HostPort checks a "host:port" listen or dial address. With listen, the host
// may be empty (":7777", all interfaces).
func (p *Problems) HostPort(path, value string, listen bool) {
	if err := CheckHostPort(value, listen); err != nil {
		p.Add(path, value, "%v", err)
	}
}

// CheckHostPort is HostPort's test, for callers outside a Validate.
func CheckHostPort(value string, listen bool) error {
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		return errors.New(`want "host:port", e.g. "127.0.0.1:7777"`)
	}
	if host == "" && !listen {
		return errors.New("the host is missing")
	}
	if strings.ContainsAny(host, " /") {
		return errors.New("the host is not a name or an IP address")
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if n == 0 && !listen {
		return errors.New("port 0 cannot be dialled")
	}
	return nil
}

// LogLevels are the values accepted for log_level.
var LogLevels = []string{"debug", "info", "warn", "error"}

// LogLevel checks a log level name.
func (p *Problems) LogLevel(path, value string) {
	for _, l := range LogLevels {
		if value == l {
			return
		}
	}
	p.Add(path, value, "want one of %s", strings.Join(LogLevels, ", "))
}
