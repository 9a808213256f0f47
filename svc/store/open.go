package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Stores makes each service's store from one --store spec: one namespace
// per service in the same place.
type Stores interface {
	// Store is the store of the service name, holding at most max entries.
	Store(name string, max int) (Store, error)
	// Close releases what Open took.
	Close() error
}

// SpecUsage says what Open takes, for flags' usage.
const SpecUsage = `where services keep their entries: "memory" (lost at exit), "bbolt:PATH" (a file that survives restarts and crashes), or "redis://HOST:PORT/DB?prefix=NET" (shared by several instances; rediss:// for TLS, ?ca=FILE for a private CA; the password from $SKYWIRE_REDIS_PASSWORD or the file $SKYWIRE_REDIS_PASSWORD_FILE)`

// Open returns the stores spec names: "memory" (or ""), "bbolt:PATH", or
// "redis://…" / "rediss://…" (OpenRedis).
func Open(spec string) (Stores, error) {
	switch {
	case spec == "" || spec == "memory":
		return memoryStores{}, nil
	case strings.HasPrefix(spec, "bbolt:"):
		path := strings.TrimPrefix(spec, "bbolt:")
		if path == "" {
			return nil, fmt.Errorf("--store %q: give the file, as bbolt:/var/lib/skywire/services.db", spec)
		}
		d, err := OpenBolt(path)
		if err != nil {
			return nil, err
		}
		return boltStores{d}, nil
	case strings.HasPrefix(spec, "redis://"), strings.HasPrefix(spec, "rediss://"):
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err := OpenRedis(ctx, spec)
		if err != nil {
			return nil, err
		}
		return redisStores{d}, nil
	}
	return nil, fmt.Errorf("--store %q: want memory, bbolt:PATH or redis://HOST:PORT/DB", redactURL(spec))
}

// redactURL hides a password in a store URL, for messages.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "://…@" + rest[at+1:]
	}
	return s
}

type memoryStores struct{}

func (memoryStores) Store(_ string, max int) (Store, error) { return NewMemory(max), nil }
func (memoryStores) Close() error                           { return nil }

type boltStores struct{ d *BoltDB }

func (b boltStores) Store(name string, max int) (Store, error) { return b.d.Store(name, max) }
func (b boltStores) Close() error                              { return b.d.Close() }

type redisStores struct{ d *RedisDB }

func (r redisStores) Store(name string, max int) (Store, error) { return r.d.Store(name, max) }
func (r redisStores) Close() error                              { return r.d.Close() }
