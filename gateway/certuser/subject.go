package certuser

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// SubjectString writes the certificate's subject as Mosquitto's
// use_subject_as_username does: OpenSSL's X509_NAME_print_ex with
// XN_FLAG_RFC2253, so that an acl_file written for Mosquitto
// (`user CN=dev,O=Home,C=GB`) names the same clients here. That is: the
// attributes last to first, "," between RDNs and "+" inside one, OpenSSL's
// short names, values escaped as RFC 2253 asks with every byte outside
// printable ASCII as \XX of its UTF-8; an attribute of a type OpenSSL does
// not know is its dotted OID, # and the hex of the value's DER (so is one
// missing from shortNames, which holds the types certificates use).
// Go's pkix.Name.String differs in names (SERIALNUMBER, no emailAddress)
// and escaping, hence this.
func SubjectString(cert *x509.Certificate) string {
	var rdns []attributeSET
	if rest, err := asn1.Unmarshal(cert.RawSubject, &rdns); err != nil || len(rest) > 0 {
		return ""
	}
	var b strings.Builder
	for i := len(rdns) - 1; i >= 0; i-- {
		set := rdns[i]
		for j := len(set) - 1; j >= 0; j-- {
			switch {
			case b.Len() == 0:
			case j == len(set)-1:
				b.WriteByte(',')
			default:
				b.WriteByte('+')
			}
			a := set[j]
			name, known := shortNames[a.Type.String()]
			if !known {
				name = a.Type.String()
			}
			b.WriteString(name)
			b.WriteByte('=')
			if s, ok := stringValue(a.Value); ok && known {
				b.WriteString(escape(s))
			} else {
				b.WriteString("#" + strings.ToUpper(hex.EncodeToString(a.Value.FullBytes)))
			}
		}
	}
	return b.String()
}

// attributeSET is one RDN (the name tells encoding/asn1 it is a SET OF).
type attributeSET []attribute

// attribute is one AttributeTypeAndValue, its value kept raw so that its
// ASN.1 string type is known.
type attribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// shortNames are OpenSSL's short names of the attribute types certificates
// carry (objects.txt).
var shortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "title",
	"2.5.4.13":                   "description",
	"2.5.4.15":                   "businessCategory",
	"2.5.4.17":                   "postalCode",
	"2.5.4.41":                   "name",
	"2.5.4.42":                   "GN",
	"2.5.4.43":                   "initials",
	"2.5.4.44":                   "generationQualifier",
	"2.5.4.46":                   "dnQualifier",
	"2.5.4.65":                   "pseudonym",
	"2.5.4.97":                   "organizationIdentifier",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
}

// stringValue decodes the ASN.1 string types to text; false for others.
func stringValue(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal {
		return "", false
	}
	switch v.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagNumericString, 26 /* VisibleString */ :
		return string(v.Bytes), true
	case asn1.TagT61String: // read as Latin-1, as OpenSSL does
		r := make([]rune, len(v.Bytes))
		for i, c := range v.Bytes {
			r[i] = rune(c)
		}
		return string(r), true
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(v.Bytes[2*i:])
		}
		return string(utf16.Decode(u)), true
	case 28: // UniversalString, UTF-32BE
		if len(v.Bytes)%4 != 0 {
			return "", false
		}
		var b strings.Builder
		for i := 0; i < len(v.Bytes); i += 4 {
			b.WriteRune(rune(binary.BigEndian.Uint32(v.Bytes[i:])))
		}
		return b.String(), true
	}
	return "", false
}

// escape is OpenSSL's ASN1_STRFLGS_RFC2253 escaping of one value.
func escape(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%02X", c)
		case strings.IndexByte(`,+"\<>;`, c) >= 0,
			(c == '#' || c == ' ') && i == 0,
			c == ' ' && i == len(s)-1:
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
