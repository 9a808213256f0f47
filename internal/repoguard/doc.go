// Package repoguard holds the repository's guards as tests: every Go file is
// gofmt-formatted, `go vet` is clean, and packages import each other only in
// the directions docs/architecture.md allows (the rules table in
// repoguard_test.go is the enforced copy).
package repoguard
