package noise

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/cpu"
)

// Cipher is the AEAD of a session's transport phase.
type Cipher uint8

// The transport-phase ciphers. The handshake always uses ChaChaPoly; the
// transport phase uses AESGCM when both sides have AES hardware (decided by
// the capability byte each side sends in its handshake payloads), else
// ChaChaPoly.
const (
	ChaChaPoly Cipher = iota
	AESGCM
)

func (c Cipher) String() string {
	if c == AESGCM {
		return "AESGCM"
	}
	return "ChaChaPoly"
}

// capAESHardware is bit 0 of the capability byte: "AES-GCM is fast here".
const capAESHardware = 0x01

// hasAESHardware reports whether AES-GCM runs in hardware on this machine.
func hasAESHardware() bool {
	return (cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ) || (cpu.ARM64.HasAES && cpu.ARM64.HasPMULL)
}

// errNonceExhausted: 2^64-1 frames in one direction. Unreachable in practice,
// but a nonce is never reused.
var errNonceExhausted = errors.New("noise: nonce space exhausted")

// cipherState is a Noise CipherState for the transport phase. Nonces are as
// in the Noise spec: 0x00000000 ‖ LE64(n) for ChaChaPoly, 0x00000000 ‖
// BE64(n) for AESGCM. It replaces flynn/noise's after the handshake because
// that one allocates a nonce per frame; here the nonce lives in the struct.
type cipherState struct {
	kind  Cipher
	aead  cipher.AEAD
	k     [32]byte
	n     uint64
	nonce [12]byte
}

func newCipherState(kind Cipher, k [32]byte, n uint64) *cipherState {
	s := &cipherState{kind: kind, n: n}
	s.setKey(k)
	return s
}

func (s *cipherState) setKey(k [32]byte) {
	var aead cipher.AEAD
	var err error
	if s.kind == AESGCM {
		var block cipher.Block
		if block, err = aes.NewCipher(k[:]); err == nil {
			aead, err = cipher.NewGCM(block)
		}
	} else {
		aead, err = chacha20poly1305.New(k[:])
	}
	if err != nil {
		panic("noise: the AEAD rejected a 32-byte key: " + err.Error())
	}
	s.aead, s.k = aead, k
}

func (s *cipherState) setNonce(n uint64) {
	if s.kind == AESGCM {
		binary.BigEndian.PutUint64(s.nonce[4:], n)
	} else {
		binary.LittleEndian.PutUint64(s.nonce[4:], n)
	}
}

// seal appends the ciphertext of plaintext, authenticating ad too, to out.
// out's new bytes may exactly overlap plaintext, or not overlap it at all.
func (s *cipherState) seal(out, plaintext, ad []byte) ([]byte, error) {
	if s.n == math.MaxUint64 {
		return nil, errNonceExhausted
	}
	s.setNonce(s.n)
	s.n++
	return s.aead.Seal(out, s.nonce[:], plaintext, ad), nil
}

// open appends the plaintext of ciphertext (sealed with ad) to out (out may
// be ciphertext[:0]). A failure does not advance the nonce.
func (s *cipherState) open(out, ciphertext, ad []byte) ([]byte, error) {
	if s.n == math.MaxUint64 {
		return nil, errNonceExhausted
	}
	s.setNonce(s.n)
	p, err := s.aead.Open(out, s.nonce[:], ciphertext, ad)
	if err != nil {
		return nil, err
	}
	s.n++
	return p, nil
}

// rekey is Noise's REKEY(k): the first 32 bytes of ENCRYPT(k, 2^64-1, "",
// 32 zero bytes). The nonce counter carries on.
func (s *cipherState) rekey() {
	var zeros [32 + 16]byte
	s.setNonce(math.MaxUint64)
	out := s.aead.Seal(zeros[:0], s.nonce[:], zeros[:32], nil)
	var k [32]byte
	copy(k[:], out[:32])
	s.setKey(k)
}
