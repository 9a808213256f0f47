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
	if !slices.Contains(configfile.LogLevels, level) {
		return nil, usagef("log level %q: want one of %s", level, strings.Join(configfile.LogLevels, ", "))
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, err
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
		return nil, usagef("log format %q: want one of %s", format, strings.Join(logFormats, ", "))
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core, zap.ErrorOutput(zapcore.AddSync(w))), nil
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
	log, err := newLogger(e.stderr, logLevel(c, configLevel), c.String("log-format"))
	if err != nil {
		return nil, nil, err
	}
	undo := zap.RedirectStdLog(log.Named("lib"))
	return log, func() { undo(); log.Sync() }, nil
}
