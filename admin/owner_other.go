//go:build !unix

package admin

// checkDir: the temporary directory on Windows is the user's own.
func checkDir(string) error { return nil }

// checkSocket: on Windows a unix socket's owner is not checked.
func checkSocket(string) error { return nil }
