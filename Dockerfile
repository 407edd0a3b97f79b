# syntax=docker/dockerfile:1
# Launch image of the contact-center job, laid out like a Dataflow Python Flex
# Template image: the pipeline package installed on the Beam SDK image it is
# tested with, the template metadata at a fixed path, and a launcher as entry
# point (ours replaces Google's python_template_launcher, so the same image
# launches on BundleBasedDirectRunner or FlinkRunner). Everything a launch
# needs is inside: it downloads nothing.
#
#   docker build -t contact-center-launcher .
#   docker run --rm contact-center-launcher            # lists the parameters
#   docker run --rm contact-center-launcher --parameters \
#       call_events=/opt/contact-center/samples/call_events.jsonl
#
# The SDK image pins Beam and Python: keep its tag equal to setup.py's
# apache-beam pin (tests/test_templates.py checks it).

# --- Java side, built with the project's own fetch scripts -------------------
# They resolve the KafkaIO expansion-service classpath and the Beam Flink job
# server exactly as on a developer machine (scripts/stack/*.xml), so the
# image and the local stack cannot drift.
FROM apache/beam_python3.11_sdk:2.77.0 AS jars
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jdk-headless maven \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY scripts/stack/lib.sh scripts/stack/fetch_jars.sh scripts/stack/fetch_flink.sh \
     scripts/stack/flink_pom.xml scripts/stack/beam-expansion-pom.xml scripts/stack/
# built: the job server of scripts/stack/flink_pom.xml, as in the local stack. It
# shades in KafkaIO, which the expansion service hands to it (EMBEDDED
# environment), and its Beam version is the expansion service's (fetch_jars.sh
# checks); the published job server (auto/published) has neither property.
ARG FLINK_JOB_SERVER=built
ENV RUN_DIR=/build/.run
# fetch_flink.sh also installs a Flink distribution (for a local cluster);
# this stage is discarded, only the jars below are kept.
RUN --mount=type=cache,target=/root/.m2 \
    scripts/stack/fetch_jars.sh beam-expansion \
 && FLINK_JOB_SERVER=$FLINK_JOB_SERVER scripts/stack/fetch_flink.sh \
 && mkdir -p /jars \
 && cp -rL "$RUN_DIR/jars/beam-expansion" /jars/beam-expansion \
 && cp -L "$RUN_DIR/jars/flink-job-server/job-server.jar" /jars/flink-job-server.jar

# --- launch image --------------------------------------------------------------
FROM apache/beam_python3.11_sdk:2.77.0
# A JRE runs the Flink job server (FlinkRunner) and, as a side container of
# this image, the KafkaIO expansion service.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/launcher launcher \
 && install -d -o launcher -g launcher /var/lib/contact-center

COPY --from=jars /jars /opt/contact-center/jars

# The package and its dependencies are installed at build time, so a launch
# installs and stages nothing; Beam itself comes with the SDK image (the pin
# in setup.py is already satisfied) and pip check catches conflicts with it.
WORKDIR /opt/contact-center/src
COPY setup.py ./
COPY clients/ clients/
COPY options/ options/
COPY pipelines/ pipelines/
COPY transforms/ transforms/
RUN pip install --no-cache-dir . && pip check

COPY templates/contact_center/metadata.json /opt/contact-center/templates/contact_center/metadata.json
COPY samples/ /opt/contact-center/samples/
ENV TEMPLATE_METADATA=/opt/contact-center/templates/contact_center/metadata.json \
    PYTHONUNBUFFERED=1
# Fails the build if the installed launcher cannot load its template (run
# outside the source tree, so the installed package is what is imported).
RUN cd / && python -m pipelines.launch --describe > /dev/null

# Relative paths (the default SQLite file ./output/...) land in a directory
# the unprivileged user owns.
USER 10001:10001
WORKDIR /var/lib/contact-center
ENTRYPOINT ["python", "-m", "pipelines.launch"]
CMD ["--describe"]
