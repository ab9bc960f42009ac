/**
 * OData `$filter` and `$orderby` as Dataverse evaluates them, compiled once into closures that
 * run over stored records. Also the condition machinery FetchXML shares (`fetchxml.ts`): typed
 * fields, SQL-like comparisons, T-SQL `LIKE` patterns and the date operators.
 *
 * Semantics follow Dataverse, whose queries end up as SQL Server queries:
 * - strings compare case-insensitively (the default `*_CI_AS` collation) and ignore trailing
 *   spaces in `=` and ordering, as SQL Server pads for comparison;
 * - a comparison with an unset column is unknown, so neither `x eq 'a'` nor `not (x eq 'a')`
 *   matches a record whose `x` is null; only `x eq null` / `x ne null` test for null;
 * - `contains`, `startswith` and `endswith` are `LIKE` patterns: `%`, `_`, `[a-c]` and `[^a]` in
 *   the value are wildcards (learn.microsoft.com, "Use wildcard characters in conditions for
 *   string values");
 * - operator precedence is Microsoft.OData.Core's: `not` binds tighter than the comparisons,
 *   so `not name eq 'a'` is a type error and `not contains(name,'a')` is fine.
 *
 * Errors are `Fault`s with the texts the OData library and the query builder use.
 *
 * This module is the entry point; the implementation is in `filter/`, one module per concern:
 * `values` (fields, comparisons, `LIKE`), `dates` (date operators), `conversion` (query-builder
 * text values), `ordering` (sort keys), `lexer`, `parser` and `compiler` (OData `$filter` and
 * `$orderby`).
 */
export { compileFilter, compileOrderBy, primaryKeyCandidates } from "./filter/compiler.js"
export { convertText, noAttribute, parseDateText, queryBuilderCodes } from "./filter/conversion.js"
export { type DateOperator, dateOperators, dateRange, inRange } from "./filter/dates.js"
export { compileSortKeys, lookupSortName, type SortKey } from "./filter/ordering.js"
export {
  between,
  columnComparison,
  type Comparator,
  compareStrings,
  comparison,
  type ComparisonOperator,
  type Field,
  like,
  likePattern,
  membership,
  nullTest,
  type Predicate,
  type QueryOptions,
  resolveField,
  type Scalar,
  type ValueKind
} from "./filter/values.js"
