package webui

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/homebox/gateway/webui/api"
	"github.com/homebox/gateway/webui/topics"
)

// Topics is the topic explorer the console serves.
type Topics interface {
	Tree() *topics.Tree
	Publish(topic string, payload []byte, qos byte, retain bool) error
	Retained(topic string, subtree bool) ([]string, error)
}

func (h *handlers) explorer() (Topics, error) {
	if h.d.Topics == nil {
		return nil, newError(http.StatusServiceUnavailable, "the topic explorer is not running")
	}
	return h.d.Topics, nil
}

// topicList is GET /api/topics?prefix=P&depth=N: the tree below P.
func (h *handlers) topicList(c echo.Context) error {
	x, err := h.explorer()
	if err != nil {
		return err
	}
	depth := 1
	if s := c.QueryParam("depth"); s != "" {
		if depth, err = strconv.Atoi(s); err != nil || depth < 1 || depth > 16 {
			return newError(http.StatusBadRequest, "depth: a number from 1 to 16", api.LineError{Field: "depth", Message: "1 to 16"})
		}
	}
	return c.JSON(http.StatusOK, x.Tree().List(c.QueryParam("prefix"), depth, time.Now()))
}

// topicHistory is GET /api/topics/history?topic=T: one topic and its last values.
func (h *handlers) topicHistory(c echo.Context) error {
	x, err := h.explorer()
	if err != nil {
		return err
	}
	n, hist, ok := x.Tree().Get(c.QueryParam("topic"), time.Now())
	if !ok {
		return newError(http.StatusNotFound, fmt.Sprintf("no topic %q heard", c.QueryParam("topic")))
	}
	if hist == nil {
		hist = []topics.Point{}
	}
	return c.JSON(http.StatusOK, map[string]any{"node": n, "history": hist})
}

// checkTopicName refuses what a PUBLISH may not carry.
func checkTopicName(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("give a topic")
	case strings.ContainsAny(t, "+#"):
		return fmt.Errorf("%q has a wildcard (+ or #): a message goes to one topic", t)
	case strings.HasPrefix(t, "$"):
		return fmt.Errorf("%q: topics starting with $ are the broker's own", t)
	case len(t) > 65535 || !utf8.ValidString(t) || strings.ContainsRune(t, 0):
		return fmt.Errorf("the topic is not valid UTF-8 of at most 65535 bytes")
	}
	return nil
}

// topicPublish is POST /api/topics/publish.
func (h *handlers) topicPublish(c echo.Context) error {
	x, err := h.explorer()
	if err != nil {
		return err
	}
	var in api.PublishInput
	if err := bind(c, &in); err != nil {
		return err
	}
	if err := checkTopicName(in.Topic); err != nil {
		return newError(http.StatusBadRequest, "topic: "+err.Error(), api.LineError{Field: "topic", Message: err.Error()})
	}
	if in.QoS > 2 {
		return newError(http.StatusBadRequest, "qos: 0, 1 or 2", api.LineError{Field: "qos", Message: "0, 1 or 2"})
	}
	if len(in.Payload) > 256<<10 {
		return newError(http.StatusRequestEntityTooLarge, "payload: at most 256 KiB from the console")
	}
	if err := x.Publish(in.Topic, []byte(in.Payload), in.QoS, in.Retain); err != nil {
		return newError(http.StatusBadGateway, "publish: "+err.Error())
	}
	return c.JSON(http.StatusOK, map[string]bool{"ok": true})
}

// topicClearRetained is DELETE /api/topics/retained?topic=T (or prefix=P
// for a whole subtree): an empty retained message on each retained topic.
func (h *handlers) topicClearRetained(c echo.Context) error {
	x, err := h.explorer()
	if err != nil {
		return err
	}
	topic, subtree := c.QueryParam("topic"), false
	if p := c.QueryParam("prefix"); p != "" {
		topic, subtree = p, true
	}
	if err := checkTopicName(topic); err != nil {
		return newError(http.StatusBadRequest, err.Error())
	}
	out := api.Cleared{Cleared: []string{}}
	held, err := x.Retained(topic, subtree)
	if err != nil {
		return newError(http.StatusBadGateway, err.Error())
	}
	for _, t := range held {
		if err := x.Publish(t, nil, 1, true); err != nil {
			return newError(http.StatusBadGateway, fmt.Sprintf("cleared %d, then %s: %v", len(out.Cleared), t, err))
		}
		out.Cleared = append(out.Cleared, t)
	}
	return c.JSON(http.StatusOK, out)
}
