package hypervisor

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Passwords are hashed with argon2id at OWASP's recommended setting
// (19 MiB, 2 passes; RFC 9106's 64 MiB is a lot for a Raspberry Pi) and
// stored in the PHC string form. At most hashSlots hashes run at once, so
// that many logins at once cost 19 MiB each only that many times over.
const (
	argonTime    = 2
	argonMemory  = 19 << 10 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
	hashSlots    = 2
)

// hashing bounds the argon2id hashes running at once.
var hashing = make(chan struct{}, hashSlots)

func argonKey(pw, salt []byte, t, m uint32, p uint8, n uint32) []byte {
	hashing <- struct{}{}
	defer func() { <-hashing }()
	return argon2.IDKey(pw, salt, t, m, p, n)
}

// Password length bounds, in characters.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

// CheckPassword reports what is wrong with a new password, if anything.
func CheckPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordLen:
		return fmt.Errorf("the password is too short: %d characters, want at least %d", n, MinPasswordLen)
	case n > MaxPasswordLen:
		return fmt.Errorf("the password is too long: %d characters, want at most %d", n, MaxPasswordLen)
	}
	return nil
}

// hashPassword returns pw's argon2id hash in PHC form.
func hashPassword(pw string) string {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	key := argonKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// verifyPassword reports whether pw matches hash (made by hashPassword,
// with whatever parameters it names).
func verifyPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	key, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 {
		return false
	}
	got := argonKey([]byte(pw), salt, t, m, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// newToken returns n random bytes, URL-safe base64.
func newToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionID is the database key of a session token: its hash, so that a
// copy of the database logs nobody in.
func sessionID(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// newSetupCode returns a one-time setup code such as "K7Q2-M9XD-4HTA".
func newSetupCode() string {
	b := make([]byte, 8)
	rand.Read(b)
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)[:12]
	return s[:4] + "-" + s[4:8] + "-" + s[8:]
}

// setupCode is the one-time code that lets the first password be set from
// the UI. It is used up by a successful setup.
type setupCode struct {
	mu   sync.Mutex
	code string // "" once used, or when a password is set
}

// take reports whether code is the setup code, using it up if so.
func (s *setupCode) take(code string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	norm := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(code), " ", ""))
	if s.code == "" || subtle.ConstantTimeCompare([]byte(norm), []byte(s.code)) != 1 {
		return false
	}
	s.code = ""
	return true
}

func (s *setupCode) set(code string) {
	s.mu.Lock()
	s.code = code
	s.mu.Unlock()
}

// Throttling of logins and setups, per client address: the first
// freeFailures failures cost nothing, then each one doubles the wait before
// the next attempt, from throttleBase up to throttleMax. A success clears
// the address.
const (
	freeFailures   = 3
	throttleBase   = time.Second
	throttleMax    = 5 * time.Minute
	throttleForget = 30 * time.Minute // an address idle this long starts afresh
	throttleCap    = 10000            // addresses remembered at most
)

// errThrottled is returned while an address must wait.
var errThrottled = errors.New("too many failed attempts")

type throttle struct {
	mu    sync.Mutex
	addrs map[string]*attempts
}

type attempts struct {
	failures int
	until    time.Time // no attempt before this
	last     time.Time
}

func newThrottle() *throttle { return &throttle{addrs: map[string]*attempts{}} }

// allow reports how long addr must still wait (0: it may try now).
func (t *throttle) allow(addr string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.addrs[addr]
	if a == nil || !now.Before(a.until) {
		return 0
	}
	return a.until.Sub(now)
}

// fail records a failed attempt from addr.
func (t *throttle) fail(addr string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.addrs[addr]
	if a == nil || now.Sub(a.last) > throttleForget {
		if len(t.addrs) >= throttleCap {
			t.evict(now)
		}
		a = &attempts{}
		t.addrs[addr] = a
	}
	a.failures++
	a.last = now
	if a.failures > freeFailures {
		wait := throttleBase << min(a.failures-freeFailures-1, 16)
		a.until = now.Add(min(wait, throttleMax))
	}
}

// succeed clears addr.
func (t *throttle) succeed(addr string) {
	t.mu.Lock()
	delete(t.addrs, addr)
	t.mu.Unlock()
}

// evict drops forgotten addresses, or the oldest half when none is.
func (t *throttle) evict(now time.Time) {
	for k, a := range t.addrs {
		if now.Sub(a.last) > throttleForget {
			delete(t.addrs, k)
		}
	}
	if len(t.addrs) < throttleCap {
		return
	}
	n := 0
	for k := range t.addrs { // map order is random enough
		delete(t.addrs, k)
		if n++; n >= throttleCap/2 {
			return
		}
	}
}
