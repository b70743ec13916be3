package nbdata

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// An encrypted .nbdata is the zip encrypted with AES-256-CBC (PKCS#7
// padding, Node's default): a random 16-byte IV, then the ciphertext. The
// key is scrypt(password, "backup salt", N=16384, r=8, p=1), 32 bytes
// (managers/backup.js #createEncryptedStream, managers/restore.js
// #createDecryptedStream, utils.js FILE_ENCRYPTION_SALT).
const encryptionSalt = "backup salt"

func deriveKey(password string) ([]byte, error) {
	return scryptKey([]byte(password), []byte(encryptionSalt), scryptN, scryptR, scryptP, 32)
}

// ErrPassword: the file does not decrypt with the password given.
var ErrPassword = errors.New("does not decrypt with the password given (wrong password, or not an encrypted backup)")

// decrypt streams src (IV + ciphertext) to dst as plain bytes.
func decrypt(dst io.Writer, src io.Reader, password string) error {
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(src, iv); err != nil {
		return fmt.Errorf("encrypted file shorter than its 16-byte IV: %w", err)
	}
	key, err := deriveKey(password)
	if err != nil {
		return err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	mode := cipher.NewCBCDecrypter(block, iv)
	const chunk = 64 * 1024
	buf := make([]byte, chunk+aes.BlockSize)
	var held []byte // the last block, kept until we know it is the last
	for {
		n, rerr := io.ReadFull(src, buf[:chunk])
		if n%aes.BlockSize != 0 && rerr == nil {
			return errors.New("ciphertext is not a whole number of blocks")
		}
		if n > 0 {
			if n%aes.BlockSize != 0 {
				return fmt.Errorf("ciphertext is not a whole number of AES blocks: %w", ErrPassword)
			}
			mode.CryptBlocks(buf[:n], buf[:n])
			if held != nil {
				if _, err := dst.Write(held); err != nil {
					return err
				}
			}
			if _, err := dst.Write(buf[:n-aes.BlockSize]); err != nil {
				return err
			}
			held = append(held[:0], buf[n-aes.BlockSize:n]...)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if held == nil {
		return fmt.Errorf("no ciphertext after the IV: %w", ErrPassword)
	}
	pad := int(held[len(held)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(held[len(held)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return fmt.Errorf("bad padding: %w", ErrPassword)
	}
	_, err = dst.Write(held[:len(held)-pad])
	return err
}

// encryptWriter returns a writer that encrypts what is written to it into
// w (IV first); Close writes the padded last block.
func encryptWriter(w io.Writer, password string) (io.WriteCloser, error) {
	key, err := deriveKey(password)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	if _, err := w.Write(iv); err != nil {
		return nil, err
	}
	return &cbcWriter{w: w, mode: cipher.NewCBCEncrypter(block, iv)}, nil
}

type cbcWriter struct {
	w    io.Writer
	mode cipher.BlockMode
	buf  []byte
}

func (c *cbcWriter) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	n := len(c.buf) - len(c.buf)%aes.BlockSize
	if n >= 64*1024 {
		out := c.buf[:n]
		c.mode.CryptBlocks(out, out)
		if _, err := c.w.Write(out); err != nil {
			return 0, err
		}
		c.buf = append(c.buf[:0], c.buf[n:]...)
	}
	return len(p), nil
}

func (c *cbcWriter) Close() error {
	pad := aes.BlockSize - len(c.buf)%aes.BlockSize
	c.buf = append(c.buf, bytes.Repeat([]byte{byte(pad)}, pad)...)
	c.mode.CryptBlocks(c.buf, c.buf)
	_, err := c.w.Write(c.buf)
	c.buf = nil
	return err
}
