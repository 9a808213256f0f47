package cli

import (
	"io"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/skyfleet/skywire/internal/configfile"
)

// logFormats are the accepted --log-format values.
var logFormats = []string{"text", "json"}

func logFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (overrides the config's log_level)"},
		&ucli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
	}
}

// newLogger builds the root logger: level and format as named, to w.
func newLogger(w io.Writer, level, format string) (*zap.Logger, error) {
	log, _, err := newLeveledLogger(w, level, format)
	return log, err
}

// newLeveledLogger is newLogger with its level, which may be changed.
func newLeveledLogger(w io.Writer, level, format string) (*zap.Logger, *zap.AtomicLevel, error) {
	if !slices.Contains(configfile.LogLevels, level) {
		return nil, nil, usagef("log level %q: want one of %s", level, strings.Join(configfile.LogLevels, ", "))
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, err
	}
	ec := zap.NewProductionEncoderConfig()
	ec.TimeKey = "time"
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "json":
		enc = zapcore.NewJSONEncoder(ec)
	case "text":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		ec.ConsoleSeparator = " "
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, nil, usagef("log format %q: want one of %s", format, strings.Join(logFormats, ", "))
	}
	atomic := zap.NewAtomicLevelAt(lvl)
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), atomic)
	return zap.New(core, zap.ErrorOutput(zapcore.AddSync(w))), &atomic, nil
}

// logLevel picks the level: the flag, else the config's, else info.
func logLevel(c *ucli.Context, fromConfig string) string {
	if l := c.String("log-level"); l != "" {
		return l
	}
	if fromConfig != "" {
		return fromConfig
	}
	return "info"
}

// runLogger is the logger of a long-running role (visor, hypervisor): to
// stderr, at the flag's level or else the config's, with the standard
// library's log sent to it too. done flushes it and undoes the redirect.
func runLogger(c *ucli.Context, e env, configLevel string) (*zap.Logger, func(), error) {
	log, _, done, err := runLeveledLogger(c, e, configLevel)
	return log, done, err
}

// runLeveledLogger is runLogger with the level a config reload may change
// (nil when --log-level set it: the flag wins).
func runLeveledLogger(c *ucli.Context, e env, configLevel string) (*zap.Logger, *zap.AtomicLevel, func(), error) {
	log, level, err := newLeveledLogger(e.stderr, logLevel(c, configLevel), c.String("log-format"))
	if err != nil {
		return nil, nil, nil, err
	}
	if c.String("log-level") != "" {
		level = nil
	}
	undo := zap.RedirectStdLog(log.Named("lib"))
	return log, level, func() { undo(); log.Sync() }, nil
}
