# Tests of review.rego: the second decision on a held call, with input.review.
package airlock_test

import rego.v1

import data.airlock

held_update := on_prod(call("execute", {"sql": "UPDATE orders SET status = 'x' WHERE id = 1; -- -----BEGIN PRIVATE KEY-----\nDELETE FROM customers"}))

reviewed(doc, arguments) := object.union(doc, {"review": {"arguments": arguments, "removed_chars": 0, "warnings": []}})

test_code_shown_unmasked_needs_two_security_reviewers if {
	doc := reviewed(held_update, {"sql": {"type": "sql", "outside_literals": ["secret"]}})
	d := airlock.decision with input as doc
	d.verdict == "require_approval"
	"review.masked_code" in d.reasons
	"security" in d.approval.reviewers
	d.approval.min_approvals == 2
}

test_masking_inside_literals_changes_nothing if {
	doc := reviewed(on_prod(call("execute", {"sql": "UPDATE orders SET note = 'x' WHERE id = 1"})), {"sql": {"type": "sql", "outside_literals": [], "removed_chars": 12}})
	d := airlock.decision with input as doc
	d.reasons == ["sql.write_on_prod"]
	d.approval.min_approvals == data.airlock_config.approvals["sql.write_on_prod"].min_approvals
}

test_the_facts_alone_already_ask_for_two_dbas if {
	# Two statements and a DELETE without WHERE: the first decision already holds it
	# for two reviewers, whatever masking did.
	d := airlock.decision with input as held_update
	d.reasons == ["sql.multi_statement", "sql.unbounded_write", "sql.write_on_prod"]
	d.approval.min_approvals == 2
}
