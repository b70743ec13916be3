package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

func marshalHeader(h dumpHeader) (string, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	return headerPrefix + string(b) + "\n", nil
}

// check reads a dump whole from r as the backup writes it, without any
// database: see checkMySQLDump. The tables must be those the dump started
// with.
func (d *mysql) check(ctx context.Context, r io.Reader) error {
	h, err := checkMySQLDump(&ctxReader{ctx: ctx, r: r})
	if err != nil {
		return err
	}
	d.mu.Lock()
	want := d.tables
	d.mu.Unlock()
	if want != nil && !slices.Equal(h.Tables, want) {
		return errors.New("the dump's header does not list the database's tables")
	}
	return nil
}

// checkMySQLDump reads a dump to its end and fails unless it is whole:
// nocobot's header line, the tool's own header, a CREATE TABLE for every
// table the header lists, every LOCK TABLES closed by UNLOCK TABLES, and
// "-- Dump completed" as its last line, which the tools write only after
// every table, routine, trigger and event was written. A dump cut short,
// by a server that went away or a full disk, has no such last line. Lines
// are looked at only by their beginning: a row's INSERT may be megabytes
// long and is never held whole.
func checkMySQLDump(r io.Reader) (dumpHeader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	first, err := br.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(first, []byte(headerPrefix)) {
		if errors.Is(err, bufio.ErrBufferFull) {
			return dumpHeader{}, errors.New("the dump's header line is too long")
		}
		return dumpHeader{}, errors.New("not a dump written by nocobot (no header line)")
	}
	h, err := parseHeaderLine(first)
	if err != nil {
		return dumpHeader{}, err
	}
	var (
		toolHeader bool
		created    = map[string]bool{}
		open       int
		last       []byte // beginning of the last line that is not blank
		atStart    = true
	)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if atStart {
				if t := bytes.TrimSpace(line); len(t) > 0 {
					last = append(last[:0], t[:min(len(t), 64)]...)
				}
				switch {
				case bytes.HasPrefix(line, []byte("-- MariaDB dump")), bytes.HasPrefix(line, []byte("-- MySQL dump")):
					toolHeader = true
				case bytes.HasPrefix(line, []byte("CREATE TABLE `")):
					if name, ok := backquoted(line[len("CREATE TABLE "):]); ok {
						created[name] = true
					}
				case bytes.HasPrefix(line, []byte("LOCK TABLES ")):
					open++
				case bytes.HasPrefix(line, []byte("UNLOCK TABLES;")):
					open--
				}
			}
			atStart = line[len(line)-1] == '\n'
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return dumpHeader{}, fmt.Errorf("read the dump: %w", err)
		}
	}
	switch {
	case !toolHeader:
		return dumpHeader{}, errors.New("the dump has no mysqldump/mariadb-dump header")
	case !bytes.HasPrefix(last, []byte("-- Dump completed")):
		return dumpHeader{}, errors.New(`the dump does not end with "-- Dump completed": it was cut short`)
	case open != 0:
		return dumpHeader{}, errors.New("the dump has a table whose data is not closed")
	}
	var missing []string
	for _, t := range h.Tables {
		if !created[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		if len(missing) > 5 {
			missing = append(missing[:5], "…")
		}
		return dumpHeader{}, fmt.Errorf("the dump lacks tables: %s", strings.Join(missing, ", "))
	}
	return h, nil
}

// parseHeaderLine reads nocobot's header line.
func parseHeaderLine(line []byte) (dumpHeader, error) {
	var h dumpHeader
	if !bytes.HasPrefix(line, []byte(headerPrefix)) {
		return h, errors.New("not a dump written by nocobot (no header line)")
	}
	if err := json.Unmarshal(bytes.TrimSpace(line[len(headerPrefix):]), &h); err != nil || h.Format != 1 {
		return dumpHeader{}, errors.New("the dump's header line is damaged")
	}
	return h, nil
}

// backquoted reads a `quoted` identifier at the start of b.
func backquoted(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '`' {
		return "", false
	}
	var name []byte
	for i := 1; i < len(b); i++ {
		if b[i] != '`' {
			name = append(name, b[i])
			continue
		}
		if i+1 < len(b) && b[i+1] == '`' {
			name = append(name, '`')
			i++
			continue
		}
		return string(name), true
	}
	return "", false
}
