package appproto

import (
	"slices"
	"strings"
)

// Passcodes never reach an app's command line, which anyone on the host can
// read (`ps`): the visor moves each secret flag of an app's args into the
// app's environment, and the built-in apps read it from there (or from a
// file they are given).

// Secret is an app flag whose value is secret, and the environment
// variable that carries it instead.
type Secret struct {
	Flag string // "--passcode"
	Env  string // "SKYWIRE_PASSCODE"
}

// EnvPasscode carries --passcode.
const EnvPasscode = "SKYWIRE_PASSCODE"

// Secrets are the secret flags of the built-in apps.
var Secrets = []Secret{{Flag: "--passcode", Env: EnvPasscode}}

// SplitSecrets returns args without the secret flags and their values, and
// the environment entries ("NAME=value") that carry them.
func SplitSecrets(args []string) (argv, env []string) {
	for i := 0; i < len(args); i++ {
		s, value, ok := secretAt(args, i)
		if !ok {
			argv = append(argv, args[i])
			continue
		}
		if args[i] == s.Flag {
			i++ // its value was the next argument
		}
		env = append(env, s.Env+"="+value)
	}
	return argv, env
}

// MaskSecrets replaces the values of the secret flags in args, for showing
// or logging them.
func MaskSecrets(args []string) []string {
	out := slices.Clone(args)
	for i := range out {
		s, _, ok := secretAt(out, i)
		switch {
		case !ok:
		case out[i] == s.Flag:
			out[i+1] = "********"
		default:
			out[i] = s.Flag + "=********"
		}
	}
	return out
}

// secretAt reports whether args[i] is a secret flag ("--flag value" with a
// value after it, or "--flag=value"), and its value.
func secretAt(args []string, i int) (Secret, string, bool) {
	for _, s := range Secrets {
		switch {
		case args[i] == s.Flag && i+1 < len(args):
			return s, args[i+1], true
		case strings.HasPrefix(args[i], s.Flag+"="):
			return s, strings.TrimPrefix(args[i], s.Flag+"="), true
		}
	}
	return Secret{}, "", false
}
