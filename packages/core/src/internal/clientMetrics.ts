import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/** The client's metrics (`DataverseClient.metrics`). */
export const metrics = {
  requests: Metric.counter("dataverse_requests", { description: "HTTP requests sent to Dataverse" }),
  throttled: Metric.counter("dataverse_throttled", { description: "Responses with status 429" }),
  retries: Metric.counter("dataverse_retries", { description: "Requests sent again after a transient failure" }),
  latency: Metric.histogram(
    "dataverse_request_duration_ms",
    MetricBoundaries.exponential({ start: 5, factor: 2, count: 14 }),
    "Time from sending a request to its response headers"
  )
}
