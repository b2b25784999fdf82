package email

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// parts decodes a raw message's body into its parts keyed by media type
// ("text/plain", "text/html"), descending into multipart containers and
// undoing quoted-printable and base64, so tests compare the text a mail
// client would show (line breaks as \n, a final one dropped).
func parts(data []byte) (map[string]string, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse message: %w", err)
	}
	out := make(map[string]string)
	err = collectParts(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, out)
	return out, err
}

func collectParts(contentType, encoding string, body io.Reader, into map[string]string) error {
	if contentType == "" {
		contentType = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		r := multipart.NewReader(body, params["boundary"])
		for {
			// NextPart undoes quoted-printable itself and drops the header.
			p, err := r.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s part: %w", mediaType, err)
			}
			err = collectParts(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, into)
			if err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, &crlfStripper{r: body})
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("%s body: %w", mediaType, err)
	}
	// Mail is CRLF on the wire; compare text as written in Go.
	into[mediaType] = strings.TrimSuffix(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	return nil
}

// crlfStripper drops line breaks so base64 bodies wrapped at 76 columns decode.
type crlfStripper struct{ r io.Reader }

func (c *crlfStripper) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	j := 0
	for _, b := range p[:n] {
		if b != '\r' && b != '\n' {
			p[j] = b
			j++
		}
	}
	return j, err
}
