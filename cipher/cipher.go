// Package cipher is skywire's identity: secp256k1 key pairs, signatures and
// Diffie-Hellman.
//
// Text and byte layouts (see docs/protocol.md, "Identity"):
//
//	PubKey  33 bytes  compressed point 0x02|0x03 ‖ X(32), text: 66 lowercase hex
//	SecKey  32 bytes  scalar in [1, N-1] big-endian, text: 64 hex
//	Sig     65 bytes  R(32) ‖ S(32) ‖ V(1), S ≤ N/2, V ∈ {0,1,2,3}, text: 130 hex
//
// A signature is compact recoverable ECDSA over SHA-256(message): Verify
// recovers the signer's key and compares it with the expected one. Only
// low-S signatures are produced or accepted, so a signature cannot be
// altered into a second valid one for the same message.
//
// ECDH(sk, pk) is SHA-256 of the compressed point sk·pk (32 bytes).
//
// A SecKey is not comparable with ==, prints as "[redacted]" under every fmt
// verb, and reveals its bytes only through Hex, Bytes and MarshalText, which
// exist to store it.
package cipher

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Sizes of the binary forms.
const (
	PubKeySize = 33
	SecKeySize = 32
	SigSize    = 65
	// SharedSize is the size of an ECDH shared secret.
	SharedSize = 32
)

// Errors returned by the parsers and by Verify. They are wrapped with detail;
// test for them with errors.Is.
var (
	// ErrLength: the input has the wrong number of bytes or hex characters.
	ErrLength = errors.New("wrong length")
	// ErrHex: the input is not hexadecimal.
	ErrHex = errors.New("not hexadecimal")
	// ErrPrefix: a public key does not start with 0x02 or 0x03.
	ErrPrefix = errors.New("bad prefix")
	// ErrNotOnCurve: a public key is not a point on secp256k1.
	ErrNotOnCurve = errors.New("not on the secp256k1 curve")
	// ErrOutOfRange: a secret key or a signature scalar is 0 or not below the
	// group order, or a signature's S is above N/2.
	ErrOutOfRange = errors.New("out of range")
	// ErrNullKey: the all-zero public key where a real one is needed.
	ErrNullKey = errors.New("null public key")
	// ErrBadSignature: the signature does not verify for the key and message.
	ErrBadSignature = errors.New("signature does not match")
)

// PubKey is a compressed secp256k1 public key. The zero value is the null key,
// which is not a valid point; IsNull reports it.
type PubKey [PubKeySize]byte

// SecKey is a secp256k1 secret key. The zero value is "no key".
type SecKey struct {
	_ [0]func() // makes SecKey not comparable: compare with Equal.
	k [SecKeySize]byte
}

// Sig is a compact recoverable signature R ‖ S ‖ V.
type Sig [SigSize]byte

// GenerateKeyPair returns a new random key pair.
func GenerateKeyPair() (PubKey, SecKey) {
	pk, sk, err := GenerateKeyPairFrom(rand.Reader)
	if err != nil {
		// crypto/rand.Read never fails on supported platforms (Go ≥ 1.24).
		panic("cipher: reading random bytes: " + err.Error())
	}
	return pk, sk
}

// GenerateKeyPairFrom returns a key pair drawn from r, which must be a
// cryptographically secure source (tests may pass a deterministic one).
func GenerateKeyPairFrom(r io.Reader) (PubKey, SecKey, error) {
	priv, err := secp256k1.GeneratePrivateKeyFromRand(r)
	if err != nil {
		return PubKey{}, SecKey{}, fmt.Errorf("generate key: %w", err)
	}
	defer priv.Zero()
	var sk SecKey
	priv.Key.PutBytes(&sk.k)
	var pk PubKey
	copy(pk[:], priv.PubKey().SerializeCompressed())
	return pk, sk, nil
}

// ---- PubKey ----

// ParsePubKey parses 66 hex characters. The error says what is wrong: length,
// hex, prefix, or not on the curve.
func ParsePubKey(s string) (PubKey, error) {
	if len(s) != 2*PubKeySize {
		return PubKey{}, fmt.Errorf("public key %q: %w: %d hex characters, want %d", clip(s), ErrLength, len(s), 2*PubKeySize)
	}
	var b [PubKeySize]byte
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return PubKey{}, fmt.Errorf("public key %q: %w: %w", clip(s), ErrHex, err)
	}
	pk := PubKey(b)
	if err := pk.check(); err != nil {
		return PubKey{}, fmt.Errorf("public key %s: %w", s, err)
	}
	return pk, nil
}

// PubKeyFromBytes checks and returns a 33-byte compressed key.
func PubKeyFromBytes(b []byte) (PubKey, error) {
	var pk PubKey
	if len(b) != PubKeySize {
		return pk, fmt.Errorf("public key: %w: %d bytes, want %d", ErrLength, len(b), PubKeySize)
	}
	copy(pk[:], b)
	if err := pk.Check(); err != nil {
		return PubKey{}, err
	}
	return pk, nil
}

// Check reports whether pk is a valid compressed point.
func (pk PubKey) Check() error {
	if err := pk.check(); err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	return nil
}

func (pk PubKey) check() error {
	if pk.IsNull() {
		return ErrNullKey
	}
	if pk[0] != 0x02 && pk[0] != 0x03 {
		return fmt.Errorf("%w: first byte is %#02x, want 0x02 or 0x03 (a compressed key)", ErrPrefix, pk[0])
	}
	if _, err := secp256k1.ParsePubKey(pk[:]); err != nil {
		return ErrNotOnCurve
	}
	return nil
}

// IsNull reports whether pk is all zeros.
func (pk PubKey) IsNull() bool { return pk == PubKey{} }

// Hex returns the 66-character lowercase hex form.
func (pk PubKey) Hex() string { return hex.EncodeToString(pk[:]) }

// String is Hex.
func (pk PubKey) String() string { return pk.Hex() }

// Short returns the first 8 hex characters, for logs and tables.
func (pk PubKey) Short() string { return pk.Hex()[:8] }

// Less orders keys by their bytes (the order used to pick a winner between
// simultaneous dials and to sort transport edges).
func (pk PubKey) Less(other PubKey) bool {
	for i := range pk {
		if pk[i] != other[i] {
			return pk[i] < other[i]
		}
	}
	return false
}

// MarshalText encodes pk as hex, and the null key as "" (which UnmarshalText
// reads back as the null key).
func (pk PubKey) MarshalText() ([]byte, error) {
	if pk.IsNull() {
		return []byte{}, nil
	}
	return []byte(pk.Hex()), nil
}

// UnmarshalText parses hex. The empty string decodes to the null key, so an
// optional field can be left out; required fields are checked by their
// owner's Validate.
func (pk *PubKey) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*pk = PubKey{}
		return nil
	}
	p, err := ParsePubKey(string(b))
	if err != nil {
		return err
	}
	*pk = p
	return nil
}

func (pk PubKey) point() (*secp256k1.PublicKey, error) {
	if err := pk.Check(); err != nil {
		return nil, err
	}
	return secp256k1.ParsePubKey(pk[:])
}

// ---- SecKey ----

// ParseSecKey parses 64 hex characters. The error never contains the input.
func ParseSecKey(s string) (SecKey, error) {
	if len(s) != 2*SecKeySize {
		return SecKey{}, fmt.Errorf("secret key: %w: %d hex characters, want %d", ErrLength, len(s), 2*SecKeySize)
	}
	var b [SecKeySize]byte
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return SecKey{}, fmt.Errorf("secret key: %w", ErrHex)
	}
	return SecKeyFromBytes(b[:])
}

// SecKeyFromBytes checks and returns a 32-byte secret key.
func SecKeyFromBytes(b []byte) (SecKey, error) {
	if len(b) != SecKeySize {
		return SecKey{}, fmt.Errorf("secret key: %w: %d bytes, want %d", ErrLength, len(b), SecKeySize)
	}
	var scalar secp256k1.ModNScalar
	if overflow := scalar.SetByteSlice(b); overflow || scalar.IsZero() {
		return SecKey{}, fmt.Errorf("secret key: %w: must be in [1, N-1]", ErrOutOfRange)
	}
	var sk SecKey
	copy(sk.k[:], b)
	return sk, nil
}

// IsZero reports whether sk is the zero value (no key).
func (sk SecKey) IsZero() bool {
	var zero [SecKeySize]byte
	return subtle.ConstantTimeCompare(sk.k[:], zero[:]) == 1
}

// Equal compares two secret keys in constant time.
func (sk SecKey) Equal(other SecKey) bool {
	return subtle.ConstantTimeCompare(sk.k[:], other.k[:]) == 1
}

// PubKey derives the public key. It returns the null key for the zero SecKey.
func (sk SecKey) PubKey() PubKey {
	var pk PubKey
	if sk.IsZero() {
		return pk
	}
	priv := secp256k1.PrivKeyFromBytes(sk.k[:])
	defer priv.Zero()
	copy(pk[:], priv.PubKey().SerializeCompressed())
	return pk
}

// Hex returns the 64-character hex form. It exists to store the key; never
// log it.
func (sk SecKey) Hex() string { return hex.EncodeToString(sk.k[:]) }

// Bytes returns a copy of the 32 key bytes.
func (sk SecKey) Bytes() []byte { return append([]byte(nil), sk.k[:]...) }

// String redacts the key.
func (sk SecKey) String() string { return "[redacted]" }

// GoString redacts the key under %#v.
func (sk SecKey) GoString() string { return "cipher.SecKey{[redacted]}" }

// Format redacts the key under every fmt verb (%x included).
func (sk SecKey) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, sk.GoString())
		return
	}
	io.WriteString(f, sk.String())
}

// MarshalText encodes the key as hex, for config files (written with mode
// 0600).
func (sk SecKey) MarshalText() ([]byte, error) { return []byte(sk.Hex()), nil }

// UnmarshalText parses hex; the empty string is the zero key.
func (sk *SecKey) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*sk = SecKey{}
		return nil
	}
	k, err := ParseSecKey(string(b))
	if err != nil {
		return err
	}
	*sk = k
	return nil
}

// ---- signatures ----

// Sign signs SHA-256(msg).
func Sign(sk SecKey, msg []byte) (Sig, error) {
	h := sha256.Sum256(msg)
	return SignHash(sk, h)
}

// SignHash signs a 32-byte digest. RFC 6979 makes it deterministic.
func SignHash(sk SecKey, hash [32]byte) (Sig, error) {
	if sk.IsZero() {
		return Sig{}, fmt.Errorf("sign: secret key: %w", ErrOutOfRange)
	}
	priv := secp256k1.PrivKeyFromBytes(sk.k[:])
	defer priv.Zero()
	c := ecdsa.SignCompact(priv, hash[:], true) // code ‖ R ‖ S
	var sig Sig
	copy(sig[:64], c[1:])
	sig[64] = c[0] - 27 - 4
	return sig, nil
}

// Verify checks that sig is pk's signature of SHA-256(msg).
func Verify(pk PubKey, msg []byte, sig Sig) error {
	return VerifyHash(pk, sha256.Sum256(msg), sig)
}

// VerifyHash checks that sig is pk's signature of hash.
func VerifyHash(pk PubKey, hash [32]byte, sig Sig) error {
	got, err := RecoverHash(hash, sig)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(got[:], pk[:]) != 1 {
		return fmt.Errorf("verify: %w: signed by %s, want %s", ErrBadSignature, got.Short(), pk.Short())
	}
	return nil
}

// RecoverHash returns the key that made sig over hash.
func RecoverHash(hash [32]byte, sig Sig) (PubKey, error) {
	if err := sig.Check(); err != nil {
		return PubKey{}, err
	}
	var c [SigSize]byte
	c[0] = 27 + 4 + sig[64]
	copy(c[1:], sig[:64])
	pub, _, err := ecdsa.RecoverCompact(c[:], hash[:])
	if err != nil {
		return PubKey{}, fmt.Errorf("verify: %w: %w", ErrBadSignature, err)
	}
	var pk PubKey
	copy(pk[:], pub.SerializeCompressed())
	return pk, nil
}

// Check reports whether sig is well formed: R and S in [1, N-1], S ≤ N/2,
// V in 0..3. It does not verify it.
func (sig Sig) Check() error {
	var r, s secp256k1.ModNScalar
	if overflow := r.SetByteSlice(sig[:32]); overflow || r.IsZero() {
		return fmt.Errorf("signature: %w: R must be in [1, N-1]", ErrOutOfRange)
	}
	if overflow := s.SetByteSlice(sig[32:64]); overflow || s.IsZero() {
		return fmt.Errorf("signature: %w: S must be in [1, N-1]", ErrOutOfRange)
	}
	if s.IsOverHalfOrder() {
		return fmt.Errorf("signature: %w: S is above N/2 (only low-S signatures are accepted)", ErrOutOfRange)
	}
	if sig[64] > 3 {
		return fmt.Errorf("signature: %w: recovery byte is %d, want 0..3", ErrOutOfRange, sig[64])
	}
	return nil
}

// ParseSig parses 130 hex characters and checks the form (not validity).
func ParseSig(s string) (Sig, error) {
	if len(s) != 2*SigSize {
		return Sig{}, fmt.Errorf("signature: %w: %d hex characters, want %d", ErrLength, len(s), 2*SigSize)
	}
	var sig Sig
	if _, err := hex.Decode(sig[:], []byte(s)); err != nil {
		return Sig{}, fmt.Errorf("signature: %w: %w", ErrHex, err)
	}
	if err := sig.Check(); err != nil {
		return Sig{}, err
	}
	return sig, nil
}

// SigFromBytes checks and returns a 65-byte signature.
func SigFromBytes(b []byte) (Sig, error) {
	var sig Sig
	if len(b) != SigSize {
		return sig, fmt.Errorf("signature: %w: %d bytes, want %d", ErrLength, len(b), SigSize)
	}
	copy(sig[:], b)
	if err := sig.Check(); err != nil {
		return Sig{}, err
	}
	return sig, nil
}

// Hex returns the 130-character hex form.
func (sig Sig) Hex() string { return hex.EncodeToString(sig[:]) }

// String is Hex.
func (sig Sig) String() string { return sig.Hex() }

// MarshalText encodes sig as hex.
func (sig Sig) MarshalText() ([]byte, error) { return []byte(sig.Hex()), nil }

// UnmarshalText parses hex.
func (sig *Sig) UnmarshalText(b []byte) error {
	s, err := ParseSig(string(b))
	if err != nil {
		return err
	}
	*sig = s
	return nil
}

// ---- ECDH ----

// ECDH returns SHA-256 of the compressed point sk·pk. Both sides of a pair get
// the same value.
func ECDH(sk SecKey, pk PubKey) ([SharedSize]byte, error) {
	var out [SharedSize]byte
	if sk.IsZero() {
		return out, fmt.Errorf("ecdh: secret key: %w", ErrOutOfRange)
	}
	pub, err := pk.point()
	if err != nil {
		return out, fmt.Errorf("ecdh: %w", err)
	}
	var scalar secp256k1.ModNScalar
	scalar.SetBytes(&sk.k)
	defer scalar.Zero()
	var p, r secp256k1.JacobianPoint
	pub.AsJacobian(&p)
	secp256k1.ScalarMultNonConst(&scalar, &p, &r)
	r.ToAffine()
	shared := secp256k1.NewPublicKey(&r.X, &r.Y).SerializeCompressed()
	out = sha256.Sum256(shared)
	return out, nil
}

// clip shortens untrusted input quoted in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
