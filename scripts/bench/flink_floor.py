"""The floor of a Beam Python job on the Flink cluster: the main job's Kafka source into the
Python workers, and nothing else.

    PIPELINE_MODULE=scripts.bench.flink_floor scripts/submit_flink.sh cluster [job args...]

(`python -m scripts.bench.flink --job floor` does that.) Input: the call-events topic through
the main job's own source (`read_kafka_topic`, pipelines/contact_center.py).
Each record's size is taken in Python and dropped: no parsing, no state, no shuffle, no sink.
What this costs per event is what every Beam Python job on this runner pays before its own work
(docs/benchmarks.md compares it with the main job and the native Flink SQL job in one run).
"""

import logging
import sys
from typing import List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from options.config import KafkaReadConfig
from options.kafka_options import KafkaOptions
from pipelines.contact_center import read_kafka_topic


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> None:
  topic = options.view_as(KafkaOptions).kafka_call_events_topic
  _ = (
    pipeline
    | f'Kafka[{topic}]' >> read_kafka_topic(KafkaReadConfig.from_options(options), topic)
    | 'Size' >> beam.Map(lambda record: len(record.raw))
    | 'Drop' >> beam.Filter(lambda size: False)
  )


def main(argv: Optional[List[str]] = None) -> None:
  logging.basicConfig(level=logging.INFO)
  options = PipelineOptions(sys.argv[1:] if argv is None else argv)
  pipeline = beam.Pipeline(options=options)
  build(pipeline, options)
  pipeline.run().wait_until_finish()


if __name__ == '__main__':
  main()
