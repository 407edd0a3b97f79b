import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.SslAuthenticationException;

/**
 * Logs in to Kafka with the job's client settings and lists the topics, as the job's consumers
 * and producers would: same kafka-clients, and `${env:NAME}` placeholders resolved by Kafka's
 * config providers from this process's environment. Run by clients/kafka_check.py with
 * `java -cp <job-server jar> KafkaCheck <timeout ms>`; the settings arrive as
 * java.util.Properties on stdin, never on the command line.
 *
 * <p>Prints one line: "ok TAB number of topics" or "KIND TAB message" with KIND one of tls, auth,
 * denied, timeout, config, error (the message is the exception's cause chain).
 */
public class KafkaCheck {
  public static void main(String[] args) throws Exception {
    long timeoutMs = Long.parseLong(args[0]);
    Properties props = new Properties();
    props.load(System.in);
    props.putIfAbsent("request.timeout.ms", String.valueOf(timeoutMs));
    props.putIfAbsent("default.api.timeout.ms", String.valueOf(timeoutMs));
    props.putIfAbsent("reconnect.backoff.max.ms", "1000");
    try (Admin admin = Admin.create(props)) {
      int topics = admin.listTopics().names().get(timeoutMs, TimeUnit.MILLISECONDS).size();
      System.out.println("ok\t" + topics);
    } catch (ExecutionException e) {
      report(e.getCause());
    } catch (java.util.concurrent.TimeoutException e) {
      System.out.println("timeout\tno answer within " + timeoutMs + " ms");
    } catch (KafkaException | IllegalArgumentException e) {  // Admin.create: the settings
      System.out.println("config\t" + causes(e));
    }
  }

  private static void report(Throwable t) {
    String kind =
        t instanceof SslAuthenticationException ? "tls"
            : t instanceof AuthenticationException ? "auth"
            : t instanceof AuthorizationException ? "denied"
            : t instanceof org.apache.kafka.common.errors.TimeoutException ? "timeout"
            : "error";
    System.out.println(kind + "\t" + causes(t));
  }

  /** The messages of the cause chain, one line, repeats dropped. */
  private static String causes(Throwable t) {
    List<String> parts = new ArrayList<>();
    for (Throwable c = t; c != null; c = c.getCause()) {
      String m = c.getMessage() == null ? c.getClass().getSimpleName() : c.getMessage();
      if (parts.isEmpty() || !parts.get(parts.size() - 1).contains(m)) {
        parts.add(m);
      }
    }
    return String.join(": ", parts).replaceAll("\\s+", " ");
  }
}
