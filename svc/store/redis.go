package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Redis store keeps namespace ns's key k at "<prefix>:{<ns>}:k" as a plain
// string with a Redis TTL, and two indexes of the namespace's keys: the
// sorted set "<prefix>:{<ns>}" scored by expiry (Unix ms; +inf: never),
// which bounds the count and finds expired keys, and "<prefix>:{<ns>}#lex",
// every score 0, which lists a prefix's keys in order (ZRANGEBYLEX) so a
// Scan reads its prefix alone. The braces put a namespace in one Redis
// Cluster slot, as the scripts need. Swap and Delete are Lua scripts, so
// compare-and-swap is atomic however many instances of a service share the
// Redis; Redis's own clock decides expiry.

// swapScript: KEYS = key, index, lex index. ARGV = old mode
// ("absent"|"equal"|"any": Put), old, new mode ("delete"|"set"), new, ttl ms ("0":
// none), max entries. A new key first drops up to 256 expired keys from the
// indexes; the bound counts live keys.
var swapScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == 'absent' then
  if cur then return 'conflict' end
elseif ARGV[1] == 'equal' and ((not cur) or cur ~= ARGV[2]) then
  return 'conflict'
end
if ARGV[3] == 'delete' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
  redis.call('ZREM', KEYS[3], KEYS[1])
  return 'ok'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not cur then
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 256)
  if #gone > 0 then
    redis.call('ZREM', KEYS[2], unpack(gone))
    redis.call('ZREM', KEYS[3], unpack(gone))
  end
  if redis.call('ZSCORE', KEYS[2], KEYS[1]) == false and redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf') >= tonumber(ARGV[6]) then
    return 'full'
  end
end
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ttl)
  redis.call('ZADD', KEYS[2], now + ttl, KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[4])
  redis.call('ZADD', KEYS[2], '+inf', KEYS[1])
end
redis.call('ZADD', KEYS[3], 0, KEYS[1])
return 'ok'
`)

// deleteScript: KEYS = key, index, lex index.
var deleteScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
return 'ok'
`)

// go-redis writes what it notices (a pool that cannot dial) with a logger
// of its own on stderr; ours goes to the log package, which the services
// send to their zap logger.
var logOnce sync.Once

type stdLogger struct{}

func (stdLogger) Printf(_ context.Context, format string, v ...any) {
	log.Printf("redis: "+format, v...)
}

// Redis password sources: never the command line.
const (
	EnvRedisPassword     = "SKYWIRE_REDIS_PASSWORD"
	EnvRedisPasswordFile = "SKYWIRE_REDIS_PASSWORD_FILE"
)

// RedisDB is a connection pool to one Redis; Store gives a namespace.
type RedisDB struct {
	c      *redis.Client
	prefix string
	addr   string // for messages, without a password
}

// OpenRedis connects to the Redis at rawURL: redis://HOST:PORT/DB or
// rediss://… (TLS, verified against the system's CAs or, with ?ca=FILE,
// the PEM CA bundle in FILE), with ?prefix=NAME keeping this network's keys apart from
// others' in the same Redis (default "skywire"). The password, if any, comes
// from $SKYWIRE_REDIS_PASSWORD or the file $SKYWIRE_REDIS_PASSWORD_FILE
// names; a URL that holds one is refused (it would show in `ps`).
func OpenRedis(ctx context.Context, rawURL string) (*RedisDB, error) {
	logOnce.Do(func() { redis.SetLogger(stdLogger{}) })
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	if _, has := u.User.Password(); has {
		return nil, fmt.Errorf("--store %s: the URL holds a password, which anyone can read in the process list: put it in $%s or in a file named by $%s", redactURL(rawURL), EnvRedisPassword, EnvRedisPasswordFile)
	}
	opts := &redis.Options{Addr: u.Host, Protocol: 2}
	if u.Host == "" {
		return nil, fmt.Errorf("--store %s: no host:port", rawURL)
	}
	if !strings.Contains(u.Host, ":") {
		opts.Addr = u.Host + ":6379"
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if opts.DB, err = strconv.Atoi(db); err != nil {
			return nil, fmt.Errorf("--store %s: database %q is not a number", rawURL, db)
		}
	}
	if u.Scheme == "rediss" {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
		if ca := u.Query().Get("ca"); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("--store %s: ?ca=: %w", redactURL(rawURL), err)
			}
			opts.TLSConfig.RootCAs = x509.NewCertPool()
			if !opts.TLSConfig.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--store %s: ?ca=%s holds no PEM certificate", redactURL(rawURL), ca)
			}
		}
	} else if u.Query().Has("ca") {
		return nil, fmt.Errorf("--store %s: ?ca= is for rediss:// (TLS)", redactURL(rawURL))
	}
	if u.User != nil {
		opts.Username = u.User.Username()
	}
	opts.Password = os.Getenv(EnvRedisPassword)
	if f := os.Getenv(EnvRedisPasswordFile); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", EnvRedisPasswordFile, err)
		}
		opts.Password = strings.TrimSpace(string(b))
	}
	prefix := u.Query().Get("prefix")
	if prefix == "" {
		prefix = "skywire"
	}
	if strings.ContainsAny(prefix, "{}:*?[]\\ ") {
		return nil, fmt.Errorf("--store %s: prefix %q: use letters, digits, '-', '_' or '.'", rawURL, prefix)
	}
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		var unknown x509.UnknownAuthorityError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("--store %s: %w (a Redis with a certificate from a private CA: add ?ca=/path/to/ca.pem)", redactURL(rawURL), err)
		}
		return nil, fmt.Errorf("--store %s: %w", redactURL(rawURL), err)
	}
	return &RedisDB{c: c, prefix: prefix, addr: opts.Addr}, nil
}

// Store returns namespace name as a Store holding at most max entries.
func (d *RedisDB) Store(name string, max int) (*Redis, error) {
	if name == "" || strings.ContainsAny(name, "{}") {
		return nil, fmt.Errorf("store redis %s: bad namespace %q", d.addr, name)
	}
	ns := d.prefix + ":{" + name + "}"
	return &Redis{c: d.c, index: ns, lex: ns + "#lex", keyPrefix: ns + ":", max: max}, nil
}

// Close closes the pool.
func (d *RedisDB) Close() error { return d.c.Close() }

// Redis is one namespace of a RedisDB.
type Redis struct {
	c         *redis.Client
	index     string // the sorted set of the namespace's keys, by expiry
	lex       string // the same keys, for ranges by name
	keyPrefix string
	max       int
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := r.c.Get(ctx, r.keyPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return v, err
}

// Swap implements Store.
func (r *Redis) Swap(ctx context.Context, key string, old, new []byte, ttl time.Duration) error {
	if err := checkEntry(key, new); err != nil {
		return err
	}
	oldMode, newMode := "equal", "set"
	if old == nil {
		oldMode = "absent"
	}
	if new == nil {
		newMode = "delete"
	}
	return r.swap(ctx, key, oldMode, old, newMode, new, ttl)
}

// swap runs the swap script: key's value checked by oldMode ("equal" to
// old, "absent", or "any") and changed by newMode ("set" to new, "delete").
func (r *Redis) swap(ctx context.Context, key, oldMode string, old []byte, newMode string, new []byte, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	if ttl > 0 && ms == 0 {
		ms = 1
	}
	res, err := swapScript.Run(ctx, r.c, []string{r.keyPrefix + key, r.index, r.lex}, oldMode, old, newMode, new, ms, r.max).Text()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	switch res {
	case "ok":
		return nil
	case "conflict":
		return ErrConflict
	case "full":
		return ErrFull
	}
	return fmt.Errorf("redis: the swap script answered %q", res)
}

// Put implements Putter: key set to value whatever it held, in one round
// trip (the swap script with no expectation).
func (r *Redis) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if value == nil {
		return r.Delete(ctx, key)
	}
	if err := checkEntry(key, value); err != nil {
		return err
	}
	return r.swap(ctx, key, "any", nil, "set", value, ttl)
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, key string) error {
	if err := deleteScript.Run(ctx, r.c, []string{r.keyPrefix + key, r.index, r.lex}).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Scan implements Store: the keys with the prefix, in name order from the
// lex index (ZRANGEBYLEX, 256 at a time, each page starting after the last
// key seen), their values fetched with each page (MGET). Keys expired but
// not yet dropped from the index have no value and are skipped.
func (r *Redis) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) bool) error {
	full := r.keyPrefix + prefix
	from := "[" + full
	for {
		keys, err := r.c.ZRangeByLex(ctx, r.lex, &redis.ZRangeBy{Min: from, Max: "+", Count: 256}).Result()
		if err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		end := len(keys) < 256
		for i, k := range keys {
			if !strings.HasPrefix(k, full) {
				keys, end = keys[:i], true
				break
			}
		}
		if len(keys) > 0 {
			vals, err := r.c.MGet(ctx, keys...).Result()
			if err != nil {
				return fmt.Errorf("redis: %w", err)
			}
			for i, v := range vals {
				s, ok := v.(string)
				if !ok { // expired or deleted since
					continue
				}
				if !fn(strings.TrimPrefix(keys[i], r.keyPrefix), []byte(s)) {
					return nil
				}
			}
			from = "(" + keys[len(keys)-1]
		}
		if end {
			return nil
		}
	}
}

// First records key for ttl if it is not already recorded, and reports
// whether it was new: one SET NX PX, atomic in Redis, so several instances
// of a service agree on which of them saw a nonce first. These keys stay
// out of the namespace's index (Scan never lists them, the bound never
// counts them): Redis expires them by itself.
func (r *Redis) First(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if len(key) == 0 || len(key) > MaxKey {
		return false, fmt.Errorf("%w: a key of %d bytes (1 to %d)", ErrTooLarge, len(key), MaxKey)
	}
	ok, err := r.c.SetNX(ctx, r.index+"#first:"+key, "1", max(ttl, time.Millisecond)).Result()
	if err != nil {
		return false, fmt.Errorf("redis: %w", err)
	}
	return ok, nil
}
