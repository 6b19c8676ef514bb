// Package ring holds cohort's per-sender message stores: the Stash, where a
// sender keeps its own messages until every member has them, and the
// Window, where a receiver keeps each sender's messages from arrival until
// they are both delivered and stable.
//
// Both store payload bytes in one preallocated arena and describe messages
// with index/offset records, so the garbage collector never scans them and
// nothing is allocated per message.
package ring
