# Rules on what reviewers will see. For a call the first decision holds, the proxy
# computes the reviewers' view (input.review: each argument's parsed facts and what
# masking removed) and decides again with it: when a detector matched outside the
# literal values of SQL (in code or a comment, shown unmasked to reviewers), or SQL
# that does not parse had to be masked as text, two security reviewers must approve.
package airlock

import rego.v1

holds contains "review.masked_code" if {
	some argument in input.review.arguments
	count(object.get(argument, "outside_literals", [])) > 0
}
