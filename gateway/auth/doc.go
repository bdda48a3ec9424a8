// Package auth judges MQTT clients the way Mosquitto 2 does with password_file
// and acl_file, so an owner's existing files keep meaning what they meant.
//
// It exists because mochi's own auth ledger allows everything it is not told
// to refuse and keeps passwords in plain text; Mosquitto does the opposite on
// both counts. The package reads the files (password hashes in the $6$, $7$
// and $argon2id$ forms mosquitto_passwd writes; ACL lines user, topic and
// pattern), judges connections, publishes, deliveries and subscriptions, and
// plugs into mochi as one Hook that can re-read its files on SIGHUP without
// ever dropping to a half-loaded state.
package auth
