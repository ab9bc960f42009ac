/**
 * The date operators (shared with `fetchxml.ts`): the range of instants each accepts, computed
 * in UTC, weeks starting on Sunday.
 */
import { dateMs, type Field, guarded, type Predicate } from "./values.js"
const minute = 60_000
const hour = 3_600_000
const day = 86_400_000

const startOfDay = (ms: number): number => Math.floor(ms / day) * day

/** Adds months as .NET's `AddMonths` does: the day is clamped to the target month's length. */
const addMonths = (ms: number, months: number): number => {
  const date = new Date(ms)
  const target = date.getUTCFullYear() * 12 + date.getUTCMonth() + months
  const year = Math.floor(target / 12)
  const month = target - year * 12
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate()
  return Date.UTC(
    year,
    month,
    Math.min(date.getUTCDate(), lastDay),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
    date.getUTCMilliseconds()
  )
}

const startOfMonth = (ms: number): number => {
  const date = new Date(ms)
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1)
}

const startOfYear = (ms: number): number => Date.UTC(new Date(ms).getUTCFullYear(), 0, 1)

/** The date operators, in FetchXML's spelling; the OData functions map onto them. */
export const dateOperators = {
  today: "none",
  yesterday: "none",
  tomorrow: "none",
  "last-seven-days": "none",
  "next-seven-days": "none",
  "last-week": "none",
  "this-week": "none",
  "next-week": "none",
  "last-month": "none",
  "this-month": "none",
  "next-month": "none",
  "last-year": "none",
  "this-year": "none",
  "next-year": "none",
  "last-x-hours": "count",
  "next-x-hours": "count",
  "last-x-days": "count",
  "next-x-days": "count",
  "last-x-weeks": "count",
  "next-x-weeks": "count",
  "last-x-months": "count",
  "next-x-months": "count",
  "last-x-years": "count",
  "next-x-years": "count",
  "olderthan-x-minutes": "count",
  "olderthan-x-hours": "count",
  "olderthan-x-days": "count",
  "olderthan-x-weeks": "count",
  "olderthan-x-months": "count",
  "olderthan-x-years": "count",
  on: "date",
  "on-or-after": "date",
  "on-or-before": "date"
} as const

/** A date operator's name. */
export type DateOperator = keyof typeof dateOperators

/**
 * The half-open range `[from, to)` of instants a date operator accepts. `argument` is X for the
 * `*-x-*` operators and the date (ms) for `on*`. "Last" ranges end now, "next" ranges start now;
 * both run to the start or end of the day X units away, as the service's descriptions say
 * ("within the last X days").
 */
export const dateRange = (operator: DateOperator, now: number, argument: number): readonly [number, number] => {
  const today = startOfDay(now)
  const week = today - new Date(today).getUTCDay() * day
  const month = startOfMonth(now)
  const year = startOfYear(now)
  const untilNow = now + 1
  switch (operator) {
    case "today":
      return [today, today + day]
    case "yesterday":
      return [today - day, today]
    case "tomorrow":
      return [today + day, today + 2 * day]
    case "last-seven-days":
      return [today - 7 * day, untilNow]
    case "next-seven-days":
      return [now, today + 8 * day]
    case "last-week":
      return [week - 7 * day, week]
    case "this-week":
      return [week, week + 7 * day]
    case "next-week":
      return [week + 7 * day, week + 14 * day]
    case "last-month":
      return [addMonths(month, -1), month]
    case "this-month":
      return [month, addMonths(month, 1)]
    case "next-month":
      return [addMonths(month, 1), addMonths(month, 2)]
    case "last-year":
      return [addMonths(year, -12), year]
    case "this-year":
      return [year, addMonths(year, 12)]
    case "next-year":
      return [addMonths(year, 12), addMonths(year, 24)]
    case "last-x-hours":
      return [now - argument * hour, untilNow]
    case "next-x-hours":
      return [now, now + argument * hour + 1]
    case "last-x-days":
      return [today - argument * day, untilNow]
    case "next-x-days":
      return [now, today + (argument + 1) * day]
    case "last-x-weeks":
      return [today - 7 * argument * day, untilNow]
    case "next-x-weeks":
      return [now, today + (7 * argument + 1) * day]
    case "last-x-months":
      return [addMonths(today, -argument), untilNow]
    case "next-x-months":
      return [now, addMonths(today, argument) + day]
    case "last-x-years":
      return [addMonths(today, -12 * argument), untilNow]
    case "next-x-years":
      return [now, addMonths(today, 12 * argument) + day]
    case "olderthan-x-minutes":
      return [-Infinity, now - argument * minute]
    case "olderthan-x-hours":
      return [-Infinity, now - argument * hour]
    case "olderthan-x-days":
      return [-Infinity, now - argument * day]
    case "olderthan-x-weeks":
      return [-Infinity, now - 7 * argument * day]
    case "olderthan-x-months":
      return [-Infinity, addMonths(now, -argument)]
    case "olderthan-x-years":
      return [-Infinity, addMonths(now, -12 * argument)]
    case "on":
      return [startOfDay(argument), startOfDay(argument) + day]
    case "on-or-after":
      return [startOfDay(argument), Infinity]
    case "on-or-before":
      return [-Infinity, startOfDay(argument) + day]
  }
}

/** A datetime field within `[from, to)` (outside it, but not null, when negated). */
export const inRange = (field: Field, from: number, to: number, negate: boolean): Predicate =>
  guarded(field, (value) => {
    const ms = dateMs(value)
    return ms >= from && ms < to
  }, negate)
