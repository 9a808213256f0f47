//go:build windows

package dmsgpty

// Windows has no host: Serve refuses every caller with ErrUnsupported.
const supported = false

func start(startSpec) (process, error) { return nil, ErrUnsupported }

func loginShell() string { return "" }
